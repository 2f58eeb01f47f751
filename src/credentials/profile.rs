//! Credential configuration files, read the way the official SDKs read them:
//! - the `aliyun` CLI's `~/.aliyun/config.json` (`current` + `profiles[]`, modes `AK`, `StsToken`,
//!   `RamRoleArn`, `EcsRamRole`, `OIDC`, `ChainableRamRoleArn`);
//! - the shared INI file (`ALIBABA_CLOUD_CREDENTIALS_FILE`, else `~/.alibabacloud/credentials`, else
//!   the Python SDK's `credentials.ini`), types `access_key`, `ram_role_arn`, `oidc_role_arn`,
//!   `ecs_ram_role`.
//!
//! Parsing is pure: a file becomes a [`Spec`], which `chain` turns into a live source.

use super::error::ErrorKind;
use super::sts::{BadRoleRequest, RoleRequest, DEFAULT_DURATION_SECS};
use crate::ecs::credentials::{Credentials, Secret};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Credential files are tiny; anything larger is not one.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// `ChainableRamRoleArn` may name a source profile that is itself chained; stop loops.
const MAX_CHAIN_DEPTH: usize = 8;

/// A credentials file that cannot be read, or that does not say how to obtain credentials. Always
/// something for the user to fix ([`ErrorKind::Config`]); never quotes a value from the file.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("{} is larger than {MAX_FILE_BYTES} bytes", .0.display())]
    TooLarge(PathBuf),
    /// The CLI's `config.json` is not JSON.
    #[error("not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("no profile chosen (ALIBABA_CLOUD_PROFILE, --profile) and no \"current\"")]
    NoProfileChosen,
    #[error("no profile named {0:?}")]
    NoSuchProfile(String),
    /// `ChainableRamRoleArn` profiles naming each other deeper than the limit (or in a loop).
    #[error("source_profile chain deeper than {MAX_CHAIN_DEPTH} at {0:?}")]
    ChainTooDeep(String),
    #[error("mode {0:?} is not supported by sgpolicy")]
    UnsupportedMode(String),
    /// What is wrong with a profile of the CLI's `config.json`.
    #[error("profile {name:?} (mode {mode}): {source}")]
    InProfile {
        name: String,
        mode: String,
        #[source]
        source: Box<ProfileError>,
    },
    /// A line of the INI file that is not a section header, a comment or `key = value`.
    #[error("line {line}: unterminated section header")]
    UnterminatedSection { line: usize },
    #[error("line {line}: a key before any [section]")]
    KeyBeforeSection { line: usize },
    #[error("line {line}: expected key = value")]
    NotKeyValue { line: usize },
    #[error("no [{0}] section")]
    NoSection(String),
    #[error("type {0:?} is not supported")]
    UnsupportedType(String),
    /// What is wrong with a section of the INI file.
    #[error("[{section}] (type {kind}): {source}")]
    InSection {
        section: String,
        kind: String,
        #[source]
        source: Box<ProfileError>,
    },
    /// A required key (named) is missing or empty.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// The role to assume is one STS would refuse.
    #[error(transparent)]
    Role(#[from] BadRoleRequest),
}

impl ProfileError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// A configured way of obtaining credentials, before any network call.
#[derive(Clone, Debug)]
pub enum Spec {
    /// Long-lived key, or a fixed STS triple (`StsToken`).
    Static(Credentials),
    /// AssumeRole with credentials from `source`.
    RamRoleArn {
        source: Box<Spec>,
        request: RoleRequest,
        sts_region: Option<String>,
        vpc: Option<bool>,
    },
    /// The ECS instance role; `None` asks the metadata service for the name.
    EcsRamRole { role_name: Option<String> },
    /// AssumeRoleWithOIDC with the token read from `token_file` on every refresh.
    Oidc {
        request: RoleRequest,
        provider_arn: String,
        token_file: PathBuf,
        sts_region: Option<String>,
        vpc: Option<bool>,
    },
}

impl Spec {
    /// The SDK's provider name for this mode.
    pub fn name(&self) -> &'static str {
        match self {
            Spec::Static(c) if c.security_token.is_some() => "static_sts",
            Spec::Static(_) => "static_ak",
            Spec::RamRoleArn { .. } => "ram_role_arn",
            Spec::EcsRamRole { .. } => "ecs_ram_role",
            Spec::Oidc { .. } => "oidc_role_arn",
        }
    }
}

/// Reads a credential file: size-limited, and warns when group or others can read it.
pub fn read_credential_file(path: &Path) -> Result<String, ProfileError> {
    let unreadable = |source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(ProfileError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ProfileError::TooLarge(path.to_path_buf()));
    }
    if let Some(w) = permission_warning(path, &meta) {
        tracing::warn!("{w}");
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

/// A warning when a file holding credentials is readable by group or others.
#[cfg(unix)]
pub fn permission_warning(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then(|| {
        format!(
            "credentials file {} is readable by group or others (mode {mode:o}); restrict it with: chmod 600 {}",
            path.display(),
            path.display()
        )
    })
}

#[cfg(not(unix))]
pub fn permission_warning(_path: &Path, _meta: &std::fs::Metadata) -> Option<String> {
    None
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn static_ak(
    id: Option<String>,
    secret: Option<String>,
    token: Option<String>,
) -> Result<Spec, ProfileError> {
    let id = id.ok_or(ProfileError::Empty("access_key_id"))?;
    let secret = secret.ok_or(ProfileError::Empty("access_key_secret"))?;
    Ok(Spec::Static(Credentials {
        access_key_id: id,
        access_key_secret: Secret::new(secret),
        security_token: token.map(Secret::new),
    }))
}

fn role_request(
    arn: Option<String>,
    session: Option<String>,
    duration: Option<u64>,
    policy: Option<String>,
    external_id: Option<String>,
) -> Result<RoleRequest, ProfileError> {
    let mut r = RoleRequest::new(arn.ok_or(BadRoleRequest::EmptyRoleArn)?);
    if let Some(s) = session {
        r.session_name = s;
    }
    r.duration_secs = duration.unwrap_or(DEFAULT_DURATION_SECS);
    r.policy = policy;
    r.external_id = external_id;
    r.validate()?;
    Ok(r)
}

/// The profile named `wanted` (else the file's `current`) from a CLI `config.json`.
pub fn parse_cli_config(text: &str, wanted: Option<&str>) -> Result<(String, Spec), ProfileError> {
    let config: Value = serde_json::from_str(text).map_err(ProfileError::NotJson)?;
    let name = match non_empty(wanted) {
        Some(n) => n,
        None => non_empty(config.get("current").and_then(Value::as_str))
            .ok_or(ProfileError::NoProfileChosen)?,
    };
    let spec = cli_profile(&config, &name, 0)?;
    Ok((name, spec))
}

fn cli_profile(config: &Value, name: &str, depth: usize) -> Result<Spec, ProfileError> {
    if depth > MAX_CHAIN_DEPTH {
        return Err(ProfileError::ChainTooDeep(name.to_string()));
    }
    let profile = config
        .get("profiles")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        })
        .ok_or_else(|| ProfileError::NoSuchProfile(name.to_string()))?;
    let f = Fields(profile);
    let mode = f.s("mode").unwrap_or_default();
    let ctx = |e| ProfileError::InProfile {
        name: name.to_string(),
        mode: mode.clone(),
        source: Box::new(e),
    };
    let spec = match mode.as_str() {
        "AK" => static_ak(f.s("access_key_id"), f.s("access_key_secret"), None),
        "StsToken" => {
            let token = f.s("sts_token").ok_or(ProfileError::Empty("sts_token"));
            token.and_then(|t| static_ak(f.s("access_key_id"), f.s("access_key_secret"), Some(t)))
        }
        "RamRoleArn" => static_ak(f.s("access_key_id"), f.s("access_key_secret"), None)
            .and_then(|source| ram_role_arn(&f, source)),
        "ChainableRamRoleArn" => {
            let src = f
                .s("source_profile")
                .ok_or(ProfileError::Empty("source_profile"));
            src.and_then(|p| cli_profile(config, &p, depth + 1))
                .and_then(|source| ram_role_arn(&f, source))
        }
        "EcsRamRole" => Ok(Spec::EcsRamRole {
            role_name: f.s("ram_role_name"),
        }),
        "OIDC" => oidc(&f),
        other => Err(ProfileError::UnsupportedMode(other.to_string())),
    };
    spec.map_err(ctx)
}

/// One profile's fields, read leniently.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    /// A non-empty string.
    fn s(&self, k: &str) -> Option<String> {
        non_empty(self.0.get(k).and_then(Value::as_str))
    }

    /// A number: the CLI writes numbers, but hand-edited files sometimes quote them.
    fn n(&self, k: &str) -> Option<u64> {
        match self.0.get(k) {
            Some(Value::Number(x)) => x.as_u64(),
            Some(Value::String(x)) => x.trim().parse().ok(),
            _ => None,
        }
    }

    fn b(&self, k: &str) -> Option<bool> {
        match self.0.get(k) {
            Some(Value::Bool(x)) => Some(*x),
            Some(Value::String(x)) => Some(x.eq_ignore_ascii_case("true")),
            _ => None,
        }
    }
}

/// `RamRoleArn` and `ChainableRamRoleArn`: a role assumed with `source`'s credentials.
fn ram_role_arn(f: &Fields, source: Spec) -> Result<Spec, ProfileError> {
    Ok(Spec::RamRoleArn {
        source: Box::new(source),
        request: role_request(
            f.s("ram_role_arn"),
            f.s("ram_session_name"),
            f.n("expired_seconds"),
            f.s("policy"),
            f.s("external_id"),
        )?,
        sts_region: f.s("sts_region"),
        vpc: f.b("enable_vpc"),
    })
}

fn oidc(f: &Fields) -> Result<Spec, ProfileError> {
    Ok(Spec::Oidc {
        request: role_request(
            f.s("ram_role_arn"),
            f.s("role_session_name"),
            f.n("expired_seconds"),
            f.s("policy"),
            None,
        )?,
        provider_arn: f
            .s("oidc_provider_arn")
            .ok_or(ProfileError::Empty("oidc_provider_arn"))?,
        token_file: f
            .s("oidc_token_file")
            .map(PathBuf::from)
            .ok_or(ProfileError::Empty("oidc_token_file"))?,
        sts_region: f.s("sts_region"),
        vpc: f.b("enable_vpc"),
    })
}

/// An INI file: key-value pairs by section.
pub type Ini = BTreeMap<String, BTreeMap<String, String>>;

/// INI as Python's configparser reads it for this file: `[section]`, `key = value` or `key: value`,
/// `#`/`;` comment lines, and (like the SDK) anything after a `#` in a value dropped. Keys are
/// case-insensitive.
pub fn parse_ini(text: &str) -> Result<Ini, ProfileError> {
    let mut out = Ini::new();
    let mut section: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or(ProfileError::UnterminatedSection { line: i + 1 })?;
            let name = name.trim().to_string();
            out.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        let Some(sec) = &section else {
            return Err(ProfileError::KeyBeforeSection { line: i + 1 });
        };
        let split = line
            .find(['=', ':'])
            .ok_or(ProfileError::NotKeyValue { line: i + 1 })?;
        let key = line[..split].trim().to_ascii_lowercase();
        let mut value = line[split + 1..].trim();
        if let Some(hash) = value.find('#') {
            value = value[..hash].trim();
        }
        out.entry(sec.clone())
            .or_default()
            .insert(key, value.to_string());
    }
    Ok(out)
}

/// The section for `profile` from a shared credentials file.
pub fn parse_ini_profile(text: &str, section: &str) -> Result<Spec, ProfileError> {
    let ini = parse_ini(text)?;
    let sec = ini
        .get(section)
        .ok_or_else(|| ProfileError::NoSection(section.to_string()))?;
    let s = |k: &str| non_empty(sec.get(k).map(String::as_str));
    let kind = s("type").unwrap_or_default();
    let ctx = |e| ProfileError::InSection {
        section: section.to_string(),
        kind: kind.clone(),
        source: Box::new(e),
    };
    let spec = match kind.as_str() {
        "access_key" => static_ak(s("access_key_id"), s("access_key_secret"), None),
        "ram_role_arn" => {
            static_ak(s("access_key_id"), s("access_key_secret"), None).and_then(|source| {
                Ok(Spec::RamRoleArn {
                    source: Box::new(source),
                    request: role_request(
                        s("role_arn"),
                        s("role_session_name"),
                        None,
                        s("policy"),
                        None,
                    )?,
                    sts_region: None,
                    vpc: None,
                })
            })
        }
        "oidc_role_arn" => (|| {
            Ok(Spec::Oidc {
                request: role_request(
                    s("role_arn"),
                    s("role_session_name"),
                    None,
                    s("policy"),
                    None,
                )?,
                provider_arn: s("oidc_provider_arn")
                    .ok_or(ProfileError::Empty("oidc_provider_arn"))?,
                token_file: s("oidc_token_file_path")
                    .map(PathBuf::from)
                    .ok_or(ProfileError::Empty("oidc_token_file_path"))?,
                sts_region: None,
                vpc: None,
            })
        })(),
        "ecs_ram_role" => Ok(Spec::EcsRamRole {
            role_name: s("role_name"),
        }),
        other => Err(ProfileError::UnsupportedType(other.to_string())),
    };
    spec.map_err(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::testing::message;

    const CONFIG: &str = r#"{
      "current": "ak",
      "profiles": [
        {"name": "ak", "mode": "AK", "access_key_id": "LTAIid", "access_key_secret": "s3cret", "region_id": "cn-hangzhou"},
        {"name": "sts", "mode": "StsToken", "access_key_id": "STS.id", "access_key_secret": "s", "sts_token": "tok"},
        {"name": "role", "mode": "RamRoleArn", "access_key_id": "LTAIid", "access_key_secret": "s3cret",
         "ram_role_arn": "acs:ram::123:role/sgpolicy", "ram_session_name": "sess", "expired_seconds": 1800,
         "external_id": "ext", "sts_region": "cn-shanghai", "enable_vpc": true},
        {"name": "chained", "mode": "ChainableRamRoleArn", "source_profile": "role", "ram_role_arn": "acs:ram::456:role/x"},
        {"name": "loop", "mode": "ChainableRamRoleArn", "source_profile": "loop", "ram_role_arn": "acs:ram::456:role/x"},
        {"name": "ecs", "mode": "EcsRamRole", "ram_role_name": "EcsRole"},
        {"name": "oidc", "mode": "OIDC", "ram_role_arn": "acs:ram::1:role/r", "oidc_provider_arn": "acs:ram::1:oidc-provider/p",
         "oidc_token_file": "/var/run/token", "role_session_name": "s"},
        {"name": "short", "mode": "RamRoleArn", "access_key_id": "a", "access_key_secret": "b", "ram_role_arn": "r", "expired_seconds": 0},
        {"name": "sso", "mode": "CloudSSO"}
      ]}"#;

    #[test]
    fn cli_profiles_by_mode() {
        let (name, spec) = parse_cli_config(CONFIG, None).unwrap();
        assert_eq!((name.as_str(), spec.name()), ("ak", "static_ak"));
        let (_, sts) = parse_cli_config(CONFIG, Some("sts")).unwrap();
        assert_eq!(sts.name(), "static_sts");
        match parse_cli_config(CONFIG, Some("role")).unwrap().1 {
            Spec::RamRoleArn {
                source,
                request,
                sts_region,
                vpc,
            } => {
                assert_eq!(source.name(), "static_ak");
                assert_eq!(request.role_arn, "acs:ram::123:role/sgpolicy");
                assert_eq!(
                    (request.session_name.as_str(), request.duration_secs),
                    ("sess", 1800)
                );
                assert_eq!(request.external_id.as_deref(), Some("ext"));
                assert_eq!(
                    (sts_region.as_deref(), vpc),
                    (Some("cn-shanghai"), Some(true))
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_cli_config(CONFIG, Some("chained")).unwrap().1 {
            Spec::RamRoleArn { source, .. } => assert_eq!(source.name(), "ram_role_arn"),
            other => panic!("{other:?}"),
        }
        assert!(parse_cli_config(CONFIG, Some("loop"))
            .unwrap_err()
            .to_string()
            .contains("deeper"));
        assert!(matches!(
            parse_cli_config(CONFIG, Some("ecs")).unwrap().1,
            Spec::EcsRamRole { role_name: Some(ref r) } if r == "EcsRole"
        ));
        assert_eq!(
            parse_cli_config(CONFIG, Some("oidc")).unwrap().1.name(),
            "oidc_role_arn"
        );
        // Like the SDK: an explicit 0 is below STS's minimum, not "the default".
        assert!(parse_cli_config(CONFIG, Some("short"))
            .unwrap_err()
            .to_string()
            .contains("900"));
        assert!(parse_cli_config(CONFIG, Some("sso"))
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(parse_cli_config(CONFIG, Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("no profile named"));
        assert!(parse_cli_config("{", None).is_err());
        assert!(parse_cli_config("{\"profiles\": []}", None)
            .unwrap_err()
            .to_string()
            .contains("current"));
    }

    #[test]
    fn errors_never_show_the_secret() {
        let text = r#"{"current":"x","profiles":[{"name":"x","mode":"StsToken","access_key_id":"id","access_key_secret":"topsecret"}]}"#;
        let e = parse_cli_config(text, None).unwrap_err().to_string();
        assert!(e.contains("sts_token") && !e.contains("topsecret"), "{e}");
    }

    const INI: &str = "
# comment
[default]
type = access_key                  # inline comments are dropped, as the SDK does
access_key_id = LTAIini
access_key_secret = inisecret

[role]
type: ram_role_arn
access_key_id = a
access_key_secret = b
role_arn = acs:ram::1:role/r
role_session_name = s

[oidc]
type = oidc_role_arn
role_arn = acs:ram::1:role/r
oidc_provider_arn = acs:ram::1:oidc-provider/p
oidc_token_file_path = /t

[ecs]
type = ecs_ram_role
role_name = R

[bad]
type = rsa_key_pair
";

    #[test]
    fn ini_sections_by_type() {
        match parse_ini_profile(INI, "default").unwrap() {
            Spec::Static(c) => {
                assert_eq!(c.access_key_id, "LTAIini");
                assert_eq!(c.access_key_secret.expose(), "inisecret");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_ini_profile(INI, "role").unwrap().name(),
            "ram_role_arn"
        );
        assert_eq!(
            parse_ini_profile(INI, "oidc").unwrap().name(),
            "oidc_role_arn"
        );
        assert_eq!(
            parse_ini_profile(INI, "ecs").unwrap().name(),
            "ecs_ram_role"
        );
        assert!(parse_ini_profile(INI, "bad")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(parse_ini_profile(INI, "missing")
            .unwrap_err()
            .to_string()
            .contains("no [missing]"));
        assert!(parse_ini("key = v").is_err());
        assert!(parse_ini("[x").is_err());
    }

    const BROKEN: &str = r#"{"current": "", "profiles": [
        {"name": "nosecret", "mode": "AK", "access_key_id": "a"},
        {"name": "notoken", "mode": "StsToken", "access_key_id": "a", "access_key_secret": "b"},
        {"name": "noarn", "mode": "RamRoleArn", "access_key_id": "a", "access_key_secret": "b"},
        {"name": "nosource", "mode": "ChainableRamRoleArn", "ram_role_arn": "acs:ram::1:role/r"},
        {"name": "badsource", "mode": "ChainableRamRoleArn", "source_profile": "nosecret", "ram_role_arn": "acs:ram::1:role/r"},
        {"name": "noprovider", "mode": "OIDC", "ram_role_arn": "acs:ram::1:role/r", "oidc_token_file": "/t"},
        {"name": "nofile", "mode": "OIDC", "ram_role_arn": "acs:ram::1:role/r", "oidc_provider_arn": "p"},
        {"name": "nomode"}
      ]}"#;

    /// The messages, word for word: the chain's report (and so the docs) quotes them.
    #[test]
    fn cli_config_messages_word_for_word() {
        let e = |text: &str, wanted: Option<&str>| message(parse_cli_config(text, wanted));
        assert_eq!(
            e(BROKEN, None),
            "no profile chosen (ALIBABA_CLOUD_PROFILE, --profile) and no \"current\""
        );
        assert_eq!(
            e("{", None),
            "not valid JSON: EOF while parsing an object at line 1 column 1"
        );
        assert_eq!(e(BROKEN, Some("nope")), "no profile named \"nope\"");
        for (name, expected) in [
            ("nosecret", "profile \"nosecret\" (mode AK): access_key_secret is empty"),
            ("notoken", "profile \"notoken\" (mode StsToken): sts_token is empty"),
            ("noarn", "profile \"noarn\" (mode RamRoleArn): the role ARN is empty"),
            (
                "nosource",
                "profile \"nosource\" (mode ChainableRamRoleArn): source_profile is empty",
            ),
            (
                "badsource",
                "profile \"badsource\" (mode ChainableRamRoleArn): profile \"nosecret\" (mode AK): access_key_secret is empty",
            ),
            (
                "noprovider",
                "profile \"noprovider\" (mode OIDC): oidc_provider_arn is empty",
            ),
            ("nofile", "profile \"nofile\" (mode OIDC): oidc_token_file is empty"),
            ("nomode", "profile \"nomode\" (mode ): mode \"\" is not supported by sgpolicy"),
        ] {
            assert_eq!(e(BROKEN, Some(name)), expected);
        }
        assert_eq!(
            e(CONFIG, Some("short")),
            "profile \"short\" (mode RamRoleArn): session duration 0s is below STS's minimum of 900s"
        );
        assert_eq!(
            e(CONFIG, Some("sso")),
            "profile \"sso\" (mode CloudSSO): mode \"CloudSSO\" is not supported by sgpolicy"
        );
        let looped = "profile \"loop\" (mode ChainableRamRoleArn): ".repeat(MAX_CHAIN_DEPTH + 1)
            + "source_profile chain deeper than 8 at \"loop\"";
        assert_eq!(e(CONFIG, Some("loop")), looped);
    }

    #[test]
    fn ini_messages_word_for_word() {
        assert_eq!(
            message(parse_ini("key = v")),
            "line 1: a key before any [section]"
        );
        assert_eq!(
            message(parse_ini("# c\n[x")),
            "line 2: unterminated section header"
        );
        assert_eq!(
            message(parse_ini("[x]\nno separator")),
            "line 2: expected key = value"
        );
        assert_eq!(
            message(parse_ini_profile("[x]\n[y", "x")),
            "line 2: unterminated section header"
        );
        assert_eq!(
            message(parse_ini_profile(INI, "missing")),
            "no [missing] section"
        );
        assert_eq!(
            message(parse_ini_profile(INI, "bad")),
            "[bad] (type rsa_key_pair): type \"rsa_key_pair\" is not supported"
        );
        let e = |section: &str| {
            message(parse_ini_profile(
                "[a]\ntype = access_key\naccess_key_secret = s\n\
                 [r]\ntype = ram_role_arn\naccess_key_id = a\naccess_key_secret = b\n\
                 [o]\ntype = oidc_role_arn\nrole_arn = acs:ram::1:role/r\noidc_provider_arn = p\n\
                 [n]\nrole_arn = x\n",
                section,
            ))
        };
        assert_eq!(e("a"), "[a] (type access_key): access_key_id is empty");
        assert_eq!(e("r"), "[r] (type ram_role_arn): the role ARN is empty");
        assert_eq!(
            e("o"),
            "[o] (type oidc_role_arn): oidc_token_file_path is empty"
        );
        assert_eq!(e("n"), "[n] (type ): type \"\" is not supported");
    }

    #[test]
    fn file_messages_word_for_word() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(
            message(read_credential_file(&missing)),
            format!(
                "{}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        assert_eq!(
            message(read_credential_file(dir.path())),
            format!("{} is not a file", dir.path().display())
        );
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            message(read_credential_file(&big)),
            format!("{} is larger than 1048576 bytes", big.display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_files_are_flagged() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials");
        std::fs::write(&p, "[default]\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = permission_warning(&p, &std::fs::metadata(&p).unwrap()).unwrap();
        assert!(w.contains("chmod 600") && w.contains("644"), "{w}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(permission_warning(&p, &std::fs::metadata(&p).unwrap()).is_none());
    }
}
