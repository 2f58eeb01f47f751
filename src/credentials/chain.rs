//! The default credential chain, in the official SDKs' order (reference §6):
//! 1. environment: `ALIBABA_CLOUD_ACCESS_KEY_ID`, `..._SECRET`, optional `ALIBABA_CLOUD_SECURITY_TOKEN`;
//! 2. OIDC/RRSA when `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN` and
//!    `ALIBABA_CLOUD_OIDC_TOKEN_FILE` are all set;
//! 3. the CLI's `~/.aliyun/config.json` (unless `ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true`);
//! 4. the shared INI credentials file;
//! 5. the ECS instance RAM role (unless `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`).
//!
//! Like the SDK, a link that is configured but fails (a bad file, STS refusing) does not stop the
//! search; unlike the SDK's one-line message, the error lists every link with its own reason.

use super::error::Error;
use super::imds::{self, Imds};
use super::profile::{self, Spec};
use super::refresh::{FetchFn, RefreshPolicy, RefreshStatus, Refreshing};
use super::sts::{RoleRequest, Sts, StsError};
use crate::ecs::credentials::{CredentialSource, Credentials, Secret};
use crate::ecs::endpoint::{sts_url, EndpointType};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything the chain looks at, passed in so tests need not touch the process environment.
#[derive(Clone, Debug, Default)]
pub struct ChainOptions {
    pub env: BTreeMap<String, String>,
    /// `--profile`; when `None`, `ALIBABA_CLOUD_PROFILE` applies.
    pub profile: Option<String>,
    /// `--sts-endpoint` / `ALIBABA_CLOUD_ENDPOINT_STS`: a URL that replaces the computed STS host.
    pub sts_endpoint: Option<String>,
    /// `--endpoint-type vpc` also selects `sts-vpc.<region>` (when an STS region is set).
    pub endpoint_type: EndpointType,
    /// Overrides `http://100.100.100.200` (tests; loopback only).
    pub metadata_endpoint: Option<String>,
    pub allow_insecure_http: bool,
    /// For STS-issued credentials; the ECS role additionally refreshes hourly.
    pub refresh: RefreshPolicy,
}

impl ChainOptions {
    /// Options from the process environment with default endpoints.
    pub fn from_process_env() -> ChainOptions {
        ChainOptions {
            env: std::env::vars().collect(),
            ..ChainOptions::default()
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn is_true(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn profile_name(&self) -> Option<String> {
        self.profile
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| self.var("ALIBABA_CLOUD_PROFILE").map(str::to_string))
    }

    fn home(&self) -> Result<PathBuf, Error> {
        self.var("HOME").map(PathBuf::from).ok_or(Error::NoHome)
    }

    /// The STS endpoint for a link: explicit override, else the SDK's rule.
    pub fn sts(&self, region: Option<&str>, vpc: Option<bool>) -> Result<Sts, StsError> {
        let url = match self.sts_endpoint.as_deref().filter(|s| !s.is_empty()) {
            Some(u) => u.to_string(),
            None => {
                let region = region.or(self.var("ALIBABA_CLOUD_STS_REGION"));
                let vpc = vpc.unwrap_or(
                    self.is_true("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")
                        || self.endpoint_type == EndpointType::Vpc,
                );
                sts_url(region, vpc)
            }
        };
        Sts::new(&url, self.allow_insecure_http)
    }
}

/// One link of the chain and what happened there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub link: String,
    pub outcome: String,
}

/// No link produced credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainError {
    pub attempts: Vec<Attempt>,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no Alibaba Cloud credentials found; tried, in order:")?;
        for (i, a) in self.attempts.iter().enumerate() {
            write!(f, "\n  {}. {}: {}", i + 1, a.link, a.outcome)?;
        }
        Ok(())
    }
}

impl std::error::Error for ChainError {}

/// The credentials the chain settled on.
#[derive(Clone)]
pub struct Resolved {
    /// The SDK-style provider path, e.g. `env`, `cli_profile/ram_role_arn`, `ecs_ram_role`.
    pub provider: String,
    pub source: Arc<dyn CredentialSource>,
    /// Present for temporary credentials; its status is what metrics report.
    pub refreshing: Option<Arc<Refreshing>>,
}

impl Resolved {
    /// Refresh health for metrics (`None` for long-lived keys that never refresh).
    pub fn status(&self) -> Option<RefreshStatus> {
        self.refreshing.as_ref().map(|r| r.status())
    }
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("provider", &self.provider)
            .field("status", &self.status())
            .finish()
    }
}

impl CredentialSource for Resolved {
    fn current(&self) -> Result<Credentials, crate::ecs::credentials::CredentialError> {
        self.source.current()
    }
}

fn fixed(provider: String, c: Credentials) -> Resolved {
    Resolved {
        provider,
        source: Arc::new(c),
        refreshing: None,
    }
}

/// Walks the chain. The first link that yields usable credentials wins.
pub async fn resolve(opts: &ChainOptions) -> Result<Resolved, ChainError> {
    let mut tried = Tried::default();
    if let Some(r) = env_link(opts, &mut tried) {
        return Ok(found(r));
    }
    if let Some(r) = oidc_link(opts, &mut tried).await {
        return Ok(found(r));
    }
    if let Some(r) = cli_link(opts, &mut tried).await {
        return Ok(found(r));
    }
    const INI: &str =
        "credentials file (ALIBABA_CLOUD_CREDENTIALS_FILE or ~/.alibabacloud/credentials)";
    match ini_profile(opts).await {
        Ok(r) => return Ok(found(r)),
        Err(e) => tried.note(INI, e.to_string()),
    }
    if let Some(r) = instance_role_link(opts, &mut tried).await {
        return Ok(found(r));
    }
    if opts.var("ALIBABA_CLOUD_CREDENTIALS_URI").is_some() {
        tried.note(
            "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)",
            "set, but not supported by sgpolicy".into(),
        );
    }
    Err(ChainError {
        attempts: tried.attempts,
    })
}

/// The links tried so far and why each gave nothing, in order, for [`ChainError`].
#[derive(Default)]
struct Tried {
    attempts: Vec<Attempt>,
}

impl Tried {
    fn note(&mut self, link: &str, outcome: String) {
        tracing::debug!(link, "credential chain: {outcome}");
        self.attempts.push(Attempt {
            link: link.to_string(),
            outcome,
        });
    }
}

/// 1. The environment's access key.
fn env_link(opts: &ChainOptions, tried: &mut Tried) -> Option<Resolved> {
    const ENV: &str = "environment (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET)";
    match Credentials::from_env_with(|k| opts.var(k).map(str::to_string)) {
        Ok(c) => Some(fixed("env".into(), c)),
        Err(e) => {
            // Half-set variables are almost always a mistake; say so even if a later link works.
            let partial = [
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            ]
            .iter()
            .any(|v| opts.var(v).is_some());
            if partial {
                tracing::warn!("{e}; trying the rest of the credential chain");
            }
            tried.note(ENV, e.to_string());
            None
        }
    }
}

/// 2. OIDC / RRSA from the environment.
async fn oidc_link(opts: &ChainOptions, tried: &mut Tried) -> Option<Resolved> {
    const OIDC: &str = "OIDC/RRSA (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE)";
    let oidc_vars = [
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    ];
    let unset: Vec<&str> = oidc_vars
        .iter()
        .copied()
        .filter(|v| opts.var(v).is_none())
        .collect();
    if !unset.is_empty() {
        tried.note(
            OIDC,
            format!("not configured ({} not set)", unset.join(", ")),
        );
        return None;
    }
    let mut request = RoleRequest::new(opts.var(oidc_vars[0]).unwrap_or_default());
    if let Some(s) = opts.var("ALIBABA_CLOUD_ROLE_SESSION_NAME") {
        request.session_name = s.to_string();
    }
    let spec = Spec::Oidc {
        request,
        provider_arn: opts.var(oidc_vars[1]).unwrap_or_default().to_string(),
        token_file: PathBuf::from(opts.var(oidc_vars[2]).unwrap_or_default()),
        sts_region: None,
        vpc: None,
    };
    match build(&spec, "", opts).await {
        Ok(r) => Some(r),
        Err(e) => {
            tried.note(OIDC, e.to_string());
            None
        }
    }
}

/// 3. The CLI's config.json.
async fn cli_link(opts: &ChainOptions, tried: &mut Tried) -> Option<Resolved> {
    const CLI: &str = "aliyun CLI profile (~/.aliyun/config.json)";
    if opts.is_true("ALIBABA_CLOUD_CLI_PROFILE_DISABLED") {
        tried.note(
            CLI,
            "disabled by ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true".into(),
        );
        return None;
    }
    match cli_profile(opts).await {
        Ok(r) => Some(r),
        Err(e) => {
            tried.note(CLI, e.to_string());
            None
        }
    }
}

/// 5. The ECS instance role (4, the shared INI file, is [`ini_profile`]).
async fn instance_role_link(opts: &ChainOptions, tried: &mut Tried) -> Option<Resolved> {
    const ECS: &str = "ECS instance RAM role (metadata service)";
    if opts.is_true("ALIBABA_CLOUD_ECS_METADATA_DISABLED") {
        tried.note(
            ECS,
            "disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED=true".into(),
        );
        return None;
    }
    let spec = Spec::EcsRamRole {
        role_name: opts.var("ALIBABA_CLOUD_ECS_METADATA").map(str::to_string),
    };
    match build(&spec, "", opts).await {
        Ok(r) => Some(r),
        Err(e) => {
            tried.note(
                ECS,
                format!("{e} (not on ECS? set ALIBABA_CLOUD_ECS_METADATA_DISABLED=true to skip this step)"),
            );
            None
        }
    }
}

fn found(r: Resolved) -> Resolved {
    let key_id = r
        .source
        .current()
        .map(|c| c.access_key_id)
        .unwrap_or_default();
    tracing::info!(provider = %r.provider, access_key_id = %key_id, "using credentials");
    r
}

async fn cli_profile(opts: &ChainOptions) -> Result<Resolved, Error> {
    let path = opts.home()?.join(".aliyun").join("config.json");
    if !path.exists() {
        return Err(Error::NoFile(path));
    }
    let text = profile::read_credential_file(&path)?;
    let (name, spec) = match profile::parse_cli_config(&text, opts.profile_name().as_deref()) {
        Ok(found) => found,
        Err(source) => return Err(Error::InFile { path, source }),
    };
    build(&spec, "cli_profile/", opts)
        .await
        .map_err(|e| Error::InCliProfile {
            path,
            name,
            source: Box::new(e),
        })
}

async fn ini_profile(opts: &ChainOptions) -> Result<Resolved, Error> {
    let path = match opts.var("ALIBABA_CLOUD_CREDENTIALS_FILE") {
        Some(p) => {
            let p = PathBuf::from(p);
            if !p.exists() {
                return Err(Error::CredentialsFileMissing(p));
            }
            p
        }
        None => {
            let dir = opts.home()?.join(".alibabacloud");
            let [first, second] = [dir.join("credentials"), dir.join("credentials.ini")];
            let found = [&first, &second].into_iter().find(|p| p.exists()).cloned();
            match found {
                Some(p) => p,
                None => return Err(Error::NoFiles { first, second }),
            }
        }
    };
    let section = opts.profile_name().unwrap_or_else(|| "default".into());
    let text = profile::read_credential_file(&path)?;
    let spec = match profile::parse_ini_profile(&text, &section) {
        Ok(spec) => spec,
        Err(source) => return Err(Error::InFile { path, source }),
    };
    build(&spec, "profile/", opts)
        .await
        .map_err(|e| Error::InIniSection {
            path,
            section,
            source: Box::new(e),
        })
}

/// Turns a spec into a live source; temporary credentials are fetched once here (so a broken link is
/// found now, not mid-pass) and then refreshed in the background.
pub fn build<'a>(
    spec: &'a Spec,
    prefix: &'a str,
    opts: &'a ChainOptions,
) -> BoxFuture<'a, Result<Resolved, Error>> {
    Box::pin(async move {
        let provider = format!("{prefix}{}", spec.name());
        match spec {
            Spec::Static(c) => Ok(fixed(provider, c.clone())),
            Spec::RamRoleArn {
                source,
                request,
                sts_region,
                vpc,
            } => {
                let source = build(source, "", opts).await?;
                let provider = format!("{provider}/{}", source.provider);
                let sts = opts.sts(sts_region.as_deref(), *vpc)?;
                refreshing(provider, assume_role(sts, request, source), opts.refresh).await
            }
            Spec::Oidc {
                request,
                provider_arn,
                token_file,
                sts_region,
                vpc,
            } => {
                let sts = opts.sts(sts_region.as_deref(), *vpc)?;
                let fetch = assume_role_with_oidc(sts, request, provider_arn, token_file);
                refreshing(provider, fetch, opts.refresh).await
            }
            Spec::EcsRamRole { role_name } => {
                let endpoint = opts
                    .metadata_endpoint
                    .as_deref()
                    .unwrap_or(imds::DEFAULT_ENDPOINT);
                let imds = Imds::new(endpoint, opts.is_true("ALIBABA_CLOUD_IMDSV1_DISABLED"))?;
                let role = role_name.clone();
                let fetch: FetchFn = Arc::new(move || {
                    let (imds, role) = (imds.clone(), role.clone());
                    Box::pin(async move { Ok(imds.credentials(role.as_deref()).await?) })
                });
                let policy = RefreshPolicy {
                    max_age: Some(Duration::from_secs(3600)),
                    ..opts.refresh
                };
                refreshing(provider, fetch, policy).await
            }
        }
    })
}

/// Each refresh: AssumeRole with the source's current credentials.
fn assume_role(sts: Sts, request: &RoleRequest, source: Resolved) -> FetchFn {
    let request = request.clone();
    let src = source.source;
    Arc::new(move || {
        let (sts, request, src) = (sts.clone(), request.clone(), src.clone());
        Box::pin(async move {
            let creds = src.current().map_err(Error::SourceCredentials)?;
            Ok(sts.assume_role(&creds, &request).await?)
        })
    })
}

/// Each refresh: AssumeRoleWithOIDC with the token file read again (Kubernetes rotates the
/// projected token file).
fn assume_role_with_oidc(
    sts: Sts,
    request: &RoleRequest,
    provider_arn: &str,
    token_file: &std::path::Path,
) -> FetchFn {
    let (request, provider_arn, token_file) = (
        request.clone(),
        provider_arn.to_string(),
        token_file.to_path_buf(),
    );
    Arc::new(move || {
        let (sts, request, provider_arn, token_file) = (
            sts.clone(),
            request.clone(),
            provider_arn.clone(),
            token_file.clone(),
        );
        Box::pin(async move {
            let token = match tokio::fs::read_to_string(&token_file).await {
                Ok(t) => Secret::new(t),
                Err(source) => {
                    return Err(Error::OidcTokenFile {
                        path: token_file,
                        source,
                    })
                }
            };
            Ok(sts
                .assume_role_with_oidc(&request, &provider_arn, &token)
                .await?)
        })
    })
}

async fn refreshing(
    provider: String,
    fetch: FetchFn,
    policy: RefreshPolicy,
) -> Result<Resolved, Error> {
    let r = Refreshing::start(provider.clone(), fetch, policy).await?;
    Ok(Resolved {
        provider,
        source: r.clone(),
        refreshing: Some(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::testing::{closed_port, message};

    fn opts(pairs: &[(&str, &str)]) -> ChainOptions {
        ChainOptions {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ChainOptions::default()
        }
    }

    #[tokio::test]
    async fn env_wins_and_carries_the_token() {
        let r = resolve(&opts(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sec"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "tok"),
            ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"),
        ]))
        .await
        .unwrap();
        assert_eq!(r.provider, "env");
        let c = r.current().unwrap();
        assert_eq!(c.security_token.as_ref().map(Secret::expose), Some("tok"));
        assert!(r.status().is_none());
    }

    #[tokio::test]
    async fn nothing_found_lists_every_link_in_order() {
        let e = resolve(&opts(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
            ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "TRUE"),
        ]))
        .await
        .unwrap_err();
        let links: Vec<&str> = e.attempts.iter().map(|a| a.link.as_str()).collect();
        assert_eq!(links.len(), 5, "{e}");
        assert!(links[0].starts_with("environment"));
        assert!(links[1].starts_with("OIDC"));
        assert!(links[2].starts_with("aliyun CLI"));
        assert!(links[3].starts_with("credentials file"));
        assert!(links[4].starts_with("ECS"));
        let text = e.to_string();
        assert!(
            text.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"),
            "{text}"
        );
        assert!(
            text.contains("ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE not set"),
            "{text}"
        );
        assert!(text.contains("HOME is not set"), "{text}");
        assert!(
            text.contains("disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED"),
            "{text}"
        );
    }

    #[test]
    fn sts_endpoint_rules() {
        let o = opts(&[("ALIBABA_CLOUD_STS_REGION", "cn-beijing")]);
        assert_eq!(
            o.sts(None, None).unwrap().url().as_str(),
            "https://sts.cn-beijing.aliyuncs.com/"
        );
        assert_eq!(
            o.sts(Some("cn-shanghai"), Some(true))
                .unwrap()
                .url()
                .as_str(),
            "https://sts-vpc.cn-shanghai.aliyuncs.com/"
        );
        let mut v = opts(&[
            ("ALIBABA_CLOUD_STS_REGION", "cn-beijing"),
            ("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true"),
        ]);
        assert_eq!(
            v.sts(None, None).unwrap().url().as_str(),
            "https://sts-vpc.cn-beijing.aliyuncs.com/"
        );
        v.sts_endpoint = Some("http://127.0.0.1:1/".into());
        assert_eq!(
            v.sts(None, None).unwrap().url().as_str(),
            "http://127.0.0.1:1/"
        );
        v.sts_endpoint = Some("http://192.0.2.1/".into());
        assert!(
            v.sts(None, None).is_err(),
            "plain http off loopback is refused"
        );
        let mut t = opts(&[("ALIBABA_CLOUD_STS_REGION", "cn-beijing")]);
        t.endpoint_type = EndpointType::Vpc;
        assert_eq!(
            t.sts(None, None).unwrap().url().as_str(),
            "https://sts-vpc.cn-beijing.aliyuncs.com/"
        );
    }

    fn write(path: &std::path::Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The messages of the file links, word for word (the docs quote them).
    #[tokio::test]
    async fn file_link_messages_word_for_word() {
        assert_eq!(
            message(cli_profile(&opts(&[])).await),
            "HOME is not set, so the file cannot be located"
        );
        assert_eq!(
            message(ini_profile(&opts(&[])).await),
            "HOME is not set, so the file cannot be located"
        );
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        let mut o = opts(&[("HOME", h)]);
        o.sts_endpoint = Some(closed_port());
        assert_eq!(
            message(cli_profile(&o).await),
            format!("no file at {h}/.aliyun/config.json")
        );
        assert_eq!(
            message(ini_profile(&o).await),
            format!(
                "no file at {h}/.alibabacloud/credentials or {h}/.alibabacloud/credentials.ini"
            )
        );
        let mut named = o.clone();
        named
            .env
            .insert("ALIBABA_CLOUD_CREDENTIALS_FILE".into(), format!("{h}/nope"));
        assert_eq!(
            message(ini_profile(&named).await),
            format!("ALIBABA_CLOUD_CREDENTIALS_FILE names {h}/nope, which does not exist")
        );

        let config = home.path().join(".aliyun/config.json");
        write(&config, "{");
        assert_eq!(
            message(cli_profile(&o).await),
            format!(
                "{}: not valid JSON: EOF while parsing an object at line 1 column 1",
                config.display()
            )
        );
        write(
            &config,
            r#"{"current":"r","profiles":[{"name":"r","mode":"RamRoleArn","access_key_id":"a",
                "access_key_secret":"b","ram_role_arn":"acs:ram::1:role/r"}]}"#,
        );
        let e = message(cli_profile(&o).await);
        assert!(
            e.starts_with(&format!(
                "{} profile \"r\": AssumeRole at 127.0.0.1: connection failed: ",
                config.display()
            )),
            "{e}"
        );

        let ini = home.path().join(".alibabacloud/credentials");
        write(&ini, "[default]\ntype = access_key\n");
        assert_eq!(
            message(ini_profile(&o).await),
            format!(
                "{}: [default] (type access_key): access_key_id is empty",
                ini.display()
            )
        );
        write(
            &ini,
            &format!("[default]\ntype = oidc_role_arn\nrole_arn = acs:ram::1:role/r\noidc_provider_arn = p\noidc_token_file_path = {h}/token\n"),
        );
        assert_eq!(
            message(ini_profile(&o).await),
            format!(
                "{} [default]: reading the OIDC token file {h}/token: No such file or directory (os error 2)",
                ini.display()
            )
        );
        write(&home.path().join("token"), "\n");
        assert_eq!(
            message(ini_profile(&o).await),
            format!("{} [default]: the OIDC token file is empty", ini.display())
        );
    }

    /// The file links' context does not change what kind of trouble their cause is.
    #[tokio::test]
    async fn file_links_keep_the_kind_of_their_cause() {
        use crate::credentials::ErrorKind;
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        let mut o = opts(&[("HOME", h)]);
        o.sts_endpoint = Some(closed_port());
        write(
            &home.path().join(".aliyun/config.json"),
            r#"{"current":"r","profiles":[{"name":"r","mode":"RamRoleArn","access_key_id":"a",
                "access_key_secret":"b","ram_role_arn":"acs:ram::1:role/r"}]}"#,
        );
        let e = cli_profile(&o).await.unwrap_err();
        assert!(matches!(e, Error::InCliProfile { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
        write(
            &home.path().join(".alibabacloud/credentials"),
            &format!("[default]\ntype = oidc_role_arn\nrole_arn = acs:ram::1:role/r\noidc_provider_arn = p\noidc_token_file_path = {h}/token\n"),
        );
        let e = ini_profile(&o).await.unwrap_err();
        assert!(matches!(e, Error::InIniSection { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        write(
            &home.path().join(".alibabacloud/credentials"),
            "[default]\n",
        );
        let e = ini_profile(&o).await.unwrap_err();
        assert!(matches!(e, Error::InFile { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    }

    #[tokio::test]
    async fn the_metadata_link_says_how_to_skip_it() {
        let mut o = opts(&[]);
        o.metadata_endpoint = Some(closed_port());
        let e = resolve(&o).await.unwrap_err();
        let ecs = &e.attempts[4];
        assert!(ecs.link.starts_with("ECS"), "{e}");
        assert!(
            ecs.outcome.starts_with(
                "GET /latest/meta-data/ram/security-credentials/: connection failed: "
            ) && ecs.outcome.ends_with(
                " (not on ECS? set ALIBABA_CLOUD_ECS_METADATA_DISABLED=true to skip this step)"
            ),
            "{e}"
        );
        o.metadata_endpoint = Some("http://10.0.0.1".into());
        let e = resolve(&o).await.unwrap_err();
        assert_eq!(
            e.attempts[4].outcome,
            "metadata endpoint http://10.0.0.1 must be http://100.100.100.200 or a loopback address (not on ECS? set ALIBABA_CLOUD_ECS_METADATA_DISABLED=true to skip this step)"
        );
    }
}
