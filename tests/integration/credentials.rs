//! The credential chain end to end over loopback: every link (environment, OIDC/RRSA, CLI profile,
//! INI file, ECS instance role), refresh and its failure, the "nothing found" report, and a full pass at
//! `RUST_LOG=trace` whose output must not contain any secret, token or signature.

use crate::daemon::{wait_policy, Daemon};
use crate::fakes::{recording_proxy, Fake, FakeState};
use crate::harness::*;
use sgpolicy::credentials::chain::{self, ChainOptions};
use sgpolicy::credentials::profile::Spec;
use sgpolicy::credentials::refresh::RefreshPolicy;
use sgpolicy::credentials::sts::RoleRequest;
use sgpolicy::ecs::credentials::{CredentialSource, Credentials, Secret};
use sgpolicy_sim::Policy;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const HZ: &str = "cn-hangzhou";

/// A simulator account with one drifted group, sg-a, and no key yet: each test adds the keys it
/// signs with.
fn drifted_a() -> Seed {
    Seed::without_keys().group(HZ, "sg-a", Accept)
}

/// The folder that wants sg-a at Drop.
fn drop_a() -> Folder {
    Folder::new().file(
        "a.yaml",
        PolicyFile::new().group_in_region(HZ, "sg-a", Drop).yaml(),
    )
}

/// Runs one pass with the harness's test key removed and `env` applied on top.
async fn pass(sim: &Sim, folder: &Folder, extra: &[&str], env: &[(&str, Option<&str>)]) -> Run {
    let dir = folder.path().to_str().expect("utf-8").to_string();
    let mut args = vec!["--policies", dir.as_str(), "--once", "--output", "json"];
    args.extend_from_slice(extra);
    let mut all: Vec<(&str, Option<&str>)> = vec![
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", None),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", None),
    ];
    all.extend_from_slice(env);
    run(sim, &args, &all).await
}

/// Log text without ANSI colour sequences.
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn key_ids(sim: &Sim) -> Vec<String> {
    key_ids_since(sim, 0)
}

/// The access keys that signed the calls after the first `before` ones, consecutive repeats merged:
/// `["LTAIa"]` means there were calls, all signed with that key.
fn key_ids_since(sim: &Sim, before: usize) -> Vec<String> {
    let mut ids: Vec<String> = sim.calls()[before..]
        .iter()
        .map(|c| c.access_key_id.clone())
        .collect();
    ids.dedup();
    ids
}

fn write_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn home_with_cli_config(json: &str, mode: u32) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    write_file(&home.path().join(".aliyun/config.json"), json, mode);
    home
}

/// Refresh 6 s before expiry, refuse the last second: with 10-second credentials that leaves a
/// 5-second margin for a slow, loaded test machine between "refresh due" and "unusable".
fn fast_refresh() -> RefreshPolicy {
    RefreshPolicy {
        ahead: Duration::from_secs(6),
        max_age: None,
        safety: Duration::from_secs(1),
        retry_base: Duration::from_millis(200),
        retry_cap: Duration::from_millis(500),
    }
}

fn lib_opts(env: &[(&str, &str)]) -> ChainOptions {
    ChainOptions {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        refresh: fast_refresh(),
        ..ChainOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn env_credentials_with_an_sts_token_sign_every_call() {
    let sim = Sim::start(&drifted_a().sts_key("STS.env", "env-secret", "env-token")).await;
    let folder = drop_a();
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", Some("STS.env")),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", Some("env-secret")),
    ];
    // Without the token the simulator (like ECS) refuses STS keys, before any change.
    let r = pass(&sim, &folder, &[], &env).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(sim.policy(HZ, "sg-a"), Policy::Accept);
    let mut with_token = env.to_vec();
    with_token.push(("ALIBABA_CLOUD_SECURITY_TOKEN", Some("env-token")));
    let r = pass(&sim, &folder, &[], &with_token).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sim.policy(HZ, "sg-a"), Policy::Drop);
    assert_eq!(key_ids(&sim), ["STS.env"]);
    assert!(
        plain(&r.stderr).contains("using credentials provider=env"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_rrsa_assumes_the_role_unsigned_and_leaks_nothing_at_trace_level() {
    let issued = (
        "STS.oidc",
        "oidc-issued-secret-9f2",
        "oidc-issued-token-7Qx",
    );
    let fake = Fake::start(FakeState {
        oidc_token: Some("eyJhbGciOiJSUzI1NiJ9.jwt-payload-1.sig".into()),
        fixed: Some((issued.0.into(), issued.1.into(), issued.2.into())),
        ..FakeState::default()
    })
    .await;
    let sim = Sim::start(&drifted_a().sts_key(issued.0, issued.1, issued.2)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let token_file = tmp.path().join("token");
    write_file(&token_file, "eyJhbGciOiJSUzI1NiJ9.jwt-payload-1.sig", 0o600);
    let folder = drop_a();
    let r = pass(
        &sim,
        &folder,
        &[],
        &[
            (
                "ALIBABA_CLOUD_ROLE_ARN",
                Some("acs:ram::1234567890123456:role/sgpolicy"),
            ),
            (
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                Some("acs:ram::1234567890123456:oidc-provider/ack-rrsa"),
            ),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token_file.to_str()),
            ("ALIBABA_CLOUD_ROLE_SESSION_NAME", Some("sgpolicy-pod")),
            ("ALIBABA_CLOUD_ENDPOINT_STS", Some(fake.url.as_str())),
            ("RUST_LOG", Some("trace")),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids(&sim), [issued.0]);
    let calls = fake.sts_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c.action, "AssumeRoleWithOIDC");
    assert_eq!(
        c.params["RoleArn"],
        "acs:ram::1234567890123456:role/sgpolicy"
    );
    assert_eq!(
        c.params["OIDCProviderArn"],
        "acs:ram::1234567890123456:oidc-provider/ack-rrsa"
    );
    assert_eq!(c.params["RoleSessionName"], "sgpolicy-pod");
    assert_eq!(c.params["DurationSeconds"], "3600");
    assert_eq!(c.params["Format"], "JSON");
    assert!(
        !c.params.contains_key("Signature") && !c.params.contains_key("AccessKeyId"),
        "unsigned: {c:?}"
    );
    assert!(c.query.is_empty(), "nothing in the URL: {}", c.query);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("oidc_role_arn"), "{}", r.stderr);
    for secret in ["jwt-payload-1", issued.1, issued.2] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_token_file_is_reread_on_every_refresh() {
    let fake = Fake::start(FakeState {
        oidc_token: Some("jwt-one".into()),
        lifetime_secs: 10,
        ..FakeState::default()
    })
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let token_file = tmp.path().join("token");
    write_file(&token_file, "jwt-one", 0o600);
    let mut opts = lib_opts(&[
        ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r"),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1:oidc-provider/p",
        ),
        (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            token_file.to_str().expect("utf-8"),
        ),
        ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"),
    ]);
    opts.sts_endpoint = Some(fake.url.clone());
    let resolved = chain::resolve(&opts).await.expect("resolves");
    assert_eq!(resolved.provider, "oidc_role_arn");
    assert_eq!(resolved.current().expect("creds").access_key_id, "STS.1");
    // Kubernetes rotates the projected token; the old one stops working.
    write_file(&token_file, "jwt-two", 0o600);
    fake.with(|s| s.oidc_token = Some("jwt-two".into()));
    eventually("a refresh with the new token", DEADLINE, || async {
        let c = resolved
            .current()
            .expect("never without credentials while refresh works");
        if c.access_key_id != "STS.1" {
            Ok(())
        } else {
            Err(format!("still STS.1; {:?}", resolved.status()))
        }
    })
    .await;
    let calls = fake.sts_calls();
    let last = calls.last().expect("calls");
    assert_eq!(last.params["OIDCToken"], "jwt-two");
    let st = resolved.status().expect("refreshing");
    assert!(st.refreshes >= 2 && st.last_error.is_none(), "{st:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_profile_ram_role_arn_assumes_the_role_with_a_signed_request() {
    let issued = ("STS.role", "role-secret-x1", "role-token-y2");
    let fake = Fake::start(FakeState {
        keys: [(
            "LTAIsource".to_string(),
            ("source-secret-z3".to_string(), None),
        )]
        .into(),
        fixed: Some((issued.0.into(), issued.1.into(), issued.2.into())),
        ..FakeState::default()
    })
    .await;
    let sim = Sim::start(&drifted_a().sts_key(issued.0, issued.1, issued.2)).await;
    let home = home_with_cli_config(
        r#"{"current": "role", "profiles": [
            {"name": "role", "mode": "RamRoleArn", "access_key_id": "LTAIsource",
             "access_key_secret": "source-secret-z3", "ram_role_arn": "acs:ram::1234567890123456:role/sgpolicy",
             "ram_session_name": "sgp-ci", "expired_seconds": 900, "external_id": "ext-42", "region_id": "cn-hangzhou"}]}"#,
        0o600,
    );
    let folder = drop_a();
    let r = pass(
        &sim,
        &folder,
        &[],
        &[
            ("HOME", home.path().to_str()),
            ("ALIBABA_CLOUD_ENDPOINT_STS", Some(fake.url.as_str())),
            ("RUST_LOG", Some("trace")),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids(&sim), [issued.0]);
    let calls = fake.sts_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(c.action, "AssumeRole");
    assert_eq!(c.signature_ok, Some(true), "{c:?}");
    assert_eq!(c.params["AccessKeyId"], "LTAIsource");
    assert_eq!(
        c.params["RoleArn"],
        "acs:ram::1234567890123456:role/sgpolicy"
    );
    assert_eq!(c.params["RoleSessionName"], "sgp-ci");
    assert_eq!(c.params["DurationSeconds"], "900");
    assert_eq!(c.params["ExternalId"], "ext-42");
    assert!(c.query.is_empty(), "nothing in the URL: {}", c.query);
    assert!(
        r.stderr.contains("cli_profile/ram_role_arn/static_ak"),
        "{}",
        r.stderr
    );
    // At trace level: neither the source secret, the AssumeRole signature nor the issued
    // credentials appear anywhere.
    let out = format!("{}{}", r.stdout, r.stderr);
    let signature = c.params["Signature"].clone();
    let encoded_sig =
        percent_encoding::utf8_percent_encode(&signature, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    for secret in [
        "source-secret-z3",
        issued.1,
        issued.2,
        &signature,
        &encoded_sig,
    ] {
        assert!(!out.contains(secret), "{secret} leaked");
    }
    assert!(
        !r.stderr.contains("chmod 600"),
        "a 0600 file needs no warning: {}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_profile_is_chosen_by_current_env_and_flag_and_loose_files_warn() {
    let sim = Sim::start(
        &drifted_a()
            .key("LTAIa", "secret-a")
            .sts_key("STS.b", "secret-b", "token-b"),
    )
    .await;
    let home = home_with_cli_config(
        r#"{"current": "a", "profiles": [
            {"name": "a", "mode": "AK", "access_key_id": "LTAIa", "access_key_secret": "secret-a"},
            {"name": "b", "mode": "StsToken", "access_key_id": "STS.b", "access_key_secret": "secret-b", "sts_token": "token-b"}]}"#,
        0o644,
    );
    let home_env = ("HOME", home.path().to_str());
    let folder = drop_a();
    let r = pass(&sim, &folder, &["--dry-run"], &[home_env]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids(&sim), ["LTAIa"]);
    assert!(
        r.stderr.contains("readable by group or others") && r.stderr.contains("chmod 600"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("secret-a"));

    let before = sim.calls().len();
    let r = pass(
        &sim,
        &folder,
        &["--dry-run"],
        &[home_env, ("ALIBABA_CLOUD_PROFILE", Some("b"))],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids_since(&sim, before), ["STS.b"]);

    let before = sim.calls().len();
    let r = pass(
        &sim,
        &folder,
        &["--dry-run", "--profile", "b"],
        &[home_env, ("ALIBABA_CLOUD_PROFILE", Some("a"))],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        key_ids_since(&sim, before),
        ["STS.b"],
        "--profile wins over the env"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_ini_file_by_env_path_or_home_and_section() {
    let sim = Sim::start(
        &drifted_a()
            .key("LTAIini1", "ini-secret-1")
            .key("LTAIini2", "ini-secret-2"),
    )
    .await;
    let folder = drop_a();
    let ini = "[default]\ntype = access_key\naccess_key_id = LTAIini1\naccess_key_secret = ini-secret-1\n\n[other]\ntype = access_key\naccess_key_id = LTAIini2\naccess_key_secret = ini-secret-2\n";
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("creds.ini");
    write_file(&path, ini, 0o600);
    let empty_home = tempfile::tempdir().expect("tempdir");
    let r = pass(
        &sim,
        &folder,
        &["--dry-run", "--profile", "other"],
        &[
            ("HOME", empty_home.path().to_str()),
            ("ALIBABA_CLOUD_CREDENTIALS_FILE", path.to_str()),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids(&sim), ["LTAIini2"]);
    assert!(r.stderr.contains("profile/static_ak"), "{}", r.stderr);

    // The default location, default section; a CLI config.json would come first.
    let home = tempfile::tempdir().expect("tempdir");
    write_file(&home.path().join(".alibabacloud/credentials"), ini, 0o600);
    let before = sim.calls().len();
    let r = pass(
        &sim,
        &folder,
        &["--dry-run"],
        &[("HOME", home.path().to_str())],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids_since(&sim, before), ["LTAIini1"]);
    write_file(
        &home.path().join(".aliyun/config.json"),
        r#"{"current":"x","profiles":[{"name":"x","mode":"AK","access_key_id":"LTAIini2","access_key_secret":"ini-secret-2"}]}"#,
        0o600,
    );
    let before = sim.calls().len();
    let r = pass(
        &sim,
        &folder,
        &["--dry-run"],
        &[("HOME", home.path().to_str())],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        key_ids_since(&sim, before),
        ["LTAIini2"],
        "config.json precedes the INI file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_instance_role_through_imdsv2() {
    let issued = ("STS.ecs", "ecs-secret-q", "ecs-token-w");
    let fake = Fake::start(FakeState {
        fixed: Some((issued.0.into(), issued.1.into(), issued.2.into())),
        ..FakeState::default()
    })
    .await;
    let sim = Sim::start(&drifted_a().sts_key(issued.0, issued.1, issued.2)).await;
    let home = tempfile::tempdir().expect("tempdir");
    let folder = drop_a();
    let r = pass(
        &sim,
        &folder,
        &[],
        &[
            ("HOME", home.path().to_str()),
            ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", None),
            ("SGPOLICY_METADATA_ENDPOINT", Some(fake.url.as_str())),
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(key_ids(&sim), [issued.0]);
    assert_eq!(sim.policy(HZ, "sg-a"), Policy::Drop);
    let calls = fake.imds_calls();
    let shape: Vec<(String, String)> = calls
        .iter()
        .map(|c| (c.method.clone(), c.path.clone()))
        .collect();
    assert_eq!(
        shape,
        [
            ("PUT".into(), "/latest/api/token".into()),
            (
                "GET".into(),
                "/latest/meta-data/ram/security-credentials/".into()
            ),
            ("PUT".into(), "/latest/api/token".into()),
            (
                "GET".into(),
                "/latest/meta-data/ram/security-credentials/SgpolicyEcsRole".into()
            ),
        ]
    );
    assert!(calls
        .iter()
        .filter(|c| c.method == "PUT")
        .all(|c| c.ttl.as_deref() == Some("21600")));
    assert!(calls
        .iter()
        .filter(|c| c.method == "GET")
        .all(|c| c.token.as_deref() == Some("imds-session-token")));
    assert!(r.stderr.contains("ecs_ram_role"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn imdsv1_fallback_unless_disabled_and_role_name_from_env() {
    let fake = Fake::start(FakeState {
        imds_v2: false,
        ..FakeState::default()
    })
    .await;
    let mut opts = lib_opts(&[("ALIBABA_CLOUD_ECS_METADATA", "SgpolicyEcsRole")]);
    opts.metadata_endpoint = Some(fake.url.clone());
    let r = chain::resolve(&opts).await.expect("v1 fallback works");
    assert_eq!(r.provider, "ecs_ram_role");
    let calls = fake.imds_calls();
    assert!(
        calls
            .iter()
            .all(|c| c.path != "/latest/meta-data/ram/security-credentials/"),
        "role from env: {calls:?}"
    );
    assert!(calls.iter().any(|c| c.method == "GET" && c.token.is_none()));

    opts.env
        .insert("ALIBABA_CLOUD_IMDSV1_DISABLED".into(), "true".into());
    let e = chain::resolve(&opts).await.expect_err("v1 is off");
    let text = e.to_string();
    assert!(
        text.contains("5. ECS instance RAM role") && text.contains("IMDSv1 is disabled"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_found_exits_1_listing_every_link_and_why() {
    let sim = Sim::start(&drifted_a().key("testid", "testsecret")).await;
    let home = tempfile::tempdir().expect("tempdir");
    let folder = drop_a();
    let r = pass(&sim, &folder, &[], &[("HOME", home.path().to_str())]).await;
    assert_eq!(r.code, 1);
    let e = &r.stderr;
    assert!(
        e.contains("no Alibaba Cloud credentials found; tried, in order:"),
        "{e}"
    );
    let order = [
        "1. environment",
        "2. OIDC/RRSA",
        "3. aliyun CLI profile",
        "4. credentials file",
        "5. ECS instance RAM role",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|s| e.find(s).unwrap_or_else(|| panic!("{s} missing:\n{e}")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{e}");
    assert!(e.contains("ALIBABA_CLOUD_ACCESS_KEY_ID is not set"), "{e}");
    assert!(e.contains(".aliyun/config.json"), "{e}");
    assert!(
        e.contains("disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"),
        "{e}"
    );
    assert!(sim.calls().is_empty());
}

fn role_spec(source_id: &str, source_secret: &str) -> Spec {
    Spec::RamRoleArn {
        source: Box::new(Spec::Static(Credentials {
            access_key_id: source_id.into(),
            access_key_secret: Secret::new(source_secret),
            security_token: None,
        })),
        request: RoleRequest::new("acs:ram::1:role/r"),
        sts_region: None,
        vpc: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_ahead_of_expiry_then_failure_keeps_old_credentials_until_they_expire() {
    let fake = Fake::start(FakeState {
        keys: [("LTAIsrc".to_string(), ("src-secret".to_string(), None))].into(),
        lifetime_secs: 10,
        ..FakeState::default()
    })
    .await;
    let mut opts = lib_opts(&[]);
    opts.sts_endpoint = Some(fake.url.clone());
    let r = chain::build(&role_spec("LTAIsrc", "src-secret"), "", &opts)
        .await
        .expect("assumes");
    assert_eq!(r.provider, "ram_role_arn/static_ak");
    // Refreshed in the background before expiry: the pass never sees an error or an expired key.
    eventually("a refresh ahead of expiry", DEADLINE, || async {
        let c = r.current().expect("valid credentials throughout");
        let st = r.status().expect("status");
        assert!(chrono::Utc::now().timestamp() < st.expiration_unix);
        if c.access_key_id == "STS.2" {
            Ok(())
        } else {
            Err(format!("{} in use; {st:?}", c.access_key_id))
        }
    })
    .await;
    // STS goes down: STS.2 stays in use while valid, the failure is reported, and after expiry the
    // source refuses instead of handing out an expired token.
    fake.with(|s| s.sts_down = true);
    let err = eventually("the credentials to expire", DEADLINE, || async {
        match r.current() {
            Ok(c) => {
                assert_eq!(c.access_key_id, "STS.2");
                Err(format!("STS.2 still handed out; {:?}", r.status()))
            }
            Err(e) => Ok(e.to_string()),
        }
    })
    .await;
    let st = r.status().expect("status");
    assert!(st.consecutive_failures >= 1, "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .is_some_and(|e| e.contains("InternalError")),
        "{st:?}"
    );
    assert!(
        err.contains("refreshing failed") && err.contains("InternalError"),
        "{err}"
    );
    assert!(
        !err.contains("sts-secret") && !err.contains("sts-token") && !err.contains("src-secret"),
        "{err}"
    );
    // Every AssumeRole that reached the signature check was signed correctly with the source key.
    let checked: Vec<_> = fake
        .sts_calls()
        .into_iter()
        .filter_map(|c| c.signature_ok)
        .collect();
    assert!(
        checked.len() >= 2 && checked.iter().all(|ok| *ok),
        "{checked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_with_a_wrong_source_secret_fails_without_echoing_it() {
    let fake = Fake::start(FakeState {
        keys: [("LTAIsrc".to_string(), ("right-secret".to_string(), None))].into(),
        ..FakeState::default()
    })
    .await;
    let mut opts = lib_opts(&[]);
    opts.sts_endpoint = Some(fake.url.clone());
    let e = chain::build(&role_spec("LTAIsrc", "wrong-secret-123"), "", &opts)
        .await
        .expect_err("bad signature")
        .to_string();
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    assert!(!e.contains("wrong-secret-123"), "{e}");
    assert_eq!(fake.sts_calls()[0].signature_ok, Some(false));
}

/// `Signature` values found in raw requests, both as sent (encoded) and decoded.
fn signatures_in(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for part in text.split("Signature=").skip(1) {
        let v: String = part
            .chars()
            .take_while(|c| *c != '&' && !c.is_whitespace())
            .collect();
        if v.len() >= 20 {
            let decoded = percent_encoding::percent_decode_str(&v)
                .decode_utf8_lossy()
                .into_owned();
            out.push(decoded);
            out.push(v);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_pass_at_trace_level_never_prints_a_secret_token_or_signature() {
    let secret = "trace-secret-Zq9Kp";
    let token = "CAIS+trace/token=Xy7Wv";
    let sim = Sim::start(&drifted_a().sts_key("STS.trace", secret, token)).await;
    let (proxy, seen) = recording_proxy(&sim.url).await;
    let folder = drop_a();
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", Some("STS.trace")),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", Some(secret)),
        ("ALIBABA_CLOUD_SECURITY_TOKEN", Some(token)),
        ("ALIBABA_CLOUD_ENDPOINT_ECS", Some(proxy.as_str())),
        ("RUST_LOG", Some("trace")),
    ];
    let r = pass(&sim, &folder, &[], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(sim.policy(HZ, "sg-a"), Policy::Drop);
    // The HTTP stack's own trace lines are in the output too (hyper logs through `log`/`tracing`).
    let logged = plain(&r.stderr);
    assert!(
        logged.contains("hyper") && logged.contains("TRACE"),
        "trace logging is on: {logged}"
    );
    let raw = seen.lock().expect("log").clone();
    let sigs = signatures_in(&raw);
    assert!(
        sigs.len() >= 2 * 3,
        "captured the signatures on the wire: {}",
        sigs.len()
    );
    let raw_text = String::from_utf8_lossy(&raw);
    assert!(
        raw_text
            .lines()
            .filter(|l| l.starts_with("POST "))
            .all(|l| l.starts_with("POST / HTTP/1.1")),
        "parameters travel in the body, not the URL"
    );
    let out = format!("{}{}", r.stdout, r.stderr);
    let encoded_token =
        percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    for s in [secret, token, encoded_token.as_str()]
        .iter()
        .copied()
        .chain(sigs.iter().map(String::as_str))
    {
        assert!(!out.contains(s), "{s:?} leaked into the output");
    }

    // A wrong secret: ECS answers SignatureDoesNotMatch quoting its string to sign, which contains the
    // token; neither that nor the wrong secret may reach the output.
    sim.sim.set_policy(HZ, "sg-a", Policy::Accept);
    let mut bad = env.to_vec();
    bad[1] = ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", Some("wrong-secret-Pp0"));
    let r = pass(&sim, &folder, &[], &bad).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("SignatureDoesNotMatch"), "{out}");
    let twice =
        percent_encoding::utf8_percent_encode(&encoded_token, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    for s in [
        "wrong-secret-Pp0",
        token,
        encoded_token.as_str(),
        twice.as_str(),
        "Xy7Wv",
    ] {
        assert!(!out.contains(s), "{s:?} leaked into the output:\n{out}");
    }
}

#[test]
fn ram_policies_grant_exactly_the_ecs_actions_sgpolicy_calls_and_lookup_events() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for (file, tagged) in [("ram-policy.json", false), ("ram-policy-by-tag.json", true)] {
        let text = std::fs::read_to_string(dir.join(file)).expect(file);
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["Version"], "1", "{file}");
        let statements = v["Statement"].as_array().expect("Statement array");
        let mut actions: Vec<String> = statements
            .iter()
            .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        actions.sort();
        actions.dedup();
        assert_eq!(
            actions,
            [
                "actiontrail:LookupEvents",
                "ecs:DescribeNetworkInterfaces",
                "ecs:DescribePrefixListAttributes",
                "ecs:DescribeSecurityGroupAttribute",
                "ecs:DescribeSecurityGroups",
                "ecs:ModifySecurityGroupPolicy"
            ],
            "{file}"
        );
        for s in statements {
            assert_eq!(s["Effect"], "Allow", "{file}");
            if s["Action"] == serde_json::json!(["actiontrail:LookupEvents"]) {
                // ActionTrail has no resource-level permission for it.
                assert_eq!(s["Resource"], serde_json::json!(["*"]), "{file}");
                continue;
            }
            let isolation_reads = serde_json::json!([
                "ecs:DescribeNetworkInterfaces",
                "ecs:DescribePrefixListAttributes"
            ]);
            if s["Action"] == isolation_reads {
                // The isolation check's listings: interfaces by VPC and prefix lists, whose
                // resources are not security groups; listing calls are authorised on "*".
                assert_eq!(s["Resource"], serde_json::json!(["*"]), "{file}");
                assert!(
                    s.get("Condition").is_none(),
                    "{file}: reads stay unconditional"
                );
                continue;
            }
            let resources: Vec<&str> = s["Resource"]
                .as_array()
                .expect("Resource")
                .iter()
                .filter_map(|r| r.as_str())
                .collect();
            assert_eq!(resources, ["acs:ecs:*:*:securitygroup/*"], "{file}");
        }
        let has_tag_condition = text.contains("ecs:tag/");
        assert_eq!(has_tag_condition, tagged, "{file}");
        if tagged {
            // Reads stay unconditional (DescribeSecurityGroups is called with ids, not tag filters);
            // the write is what the tag restricts.
            let modify = statements
                .iter()
                .find(|s| {
                    s["Action"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "ecs:ModifySecurityGroupPolicy"))
                })
                .expect("a statement for the write");
            assert!(
                modify["Condition"]["StringEquals"]["ecs:tag/sgpolicy"].is_array(),
                "{file}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn other_accounts_are_assumed_once_each_with_the_chains_identity_and_external_id() {
    use sgpolicy::accounts::sessions::{AccountRef, Accounts};
    let fake = Fake::start(FakeState {
        keys: [(
            "LTAIbase".to_string(),
            ("base-secret".to_string(), Some("base-token".to_string())),
        )]
        .into(),
        ..FakeState::default()
    })
    .await;
    let base = Credentials {
        access_key_id: "LTAIbase".into(),
        access_key_secret: Secret::new("base-secret"),
        security_token: Some(Secret::new("base-token")),
    };
    let mut opts = lib_opts(&[]);
    opts.sts_endpoint = Some(fake.url.clone());
    let accounts = Accounts::new(std::sync::Arc::new(base), &opts).expect("accounts");
    let prod =
        AccountRef::new("acs:ram::1111111111111111:role/sgpolicy", Some("ext-prod")).expect("arn");
    let staging = AccountRef::new("acs:ram::2222222222222222:role/sgpolicy", None).expect("arn");

    let a = accounts.session(&prod).await.expect("prod");
    let again = accounts.session(&prod).await.expect("prod cached");
    assert_eq!(
        a.current().expect("creds").access_key_id,
        again.current().expect("creds").access_key_id
    );
    let b = accounts.session(&staging).await.expect("staging");
    assert_ne!(
        a.current().expect("creds").access_key_id,
        b.current().expect("creds").access_key_id
    );

    let calls = fake.sts_calls();
    assert_eq!(calls.len(), 2, "one AssumeRole per account: {calls:?}");
    assert!(calls
        .iter()
        .all(|c| c.action == "AssumeRole" && c.signature_ok == Some(true)));
    assert!(calls.iter().all(
        |c| c.params["AccessKeyId"] == "LTAIbase" && c.params["SecurityToken"] == "base-token"
    ));
    assert_eq!(
        calls[0].params["RoleArn"],
        "acs:ram::1111111111111111:role/sgpolicy"
    );
    assert_eq!(calls[0].params["ExternalId"], "ext-prod");
    assert!(!calls[1].params.contains_key("ExternalId"));
    let statuses = accounts.statuses().await;
    assert_eq!(statuses.len(), 2);
    assert!(statuses
        .iter()
        .any(|(_, s)| s.provider == "account/1111111111111111"));

    // A failed AssumeRole is reported and not cached: the next attempt calls STS again.
    fake.with(|s| s.sts_down = true);
    let other = AccountRef::new("acs:ram::3333333333333333:role/sgpolicy", None).expect("arn");
    let e = accounts
        .session(&other)
        .await
        .expect_err("sts down")
        .to_string();
    assert!(
        e.contains("InternalError") && e.contains("3333333333333333"),
        "{e}"
    );
    fake.with(|s| s.sts_down = false);
    accounts.session(&other).await.expect("retried");
    assert_eq!(fake.sts_calls().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_modes_reach_the_metadata_service_and_sts() {
    let fake = Fake::start(FakeState {
        oidc_token: Some("jwt-from-ini".into()),
        role: "NamedRole".into(),
        ..FakeState::default()
    })
    .await;
    // config.json EcsRamRole with a role name: no listing call, straight to the credentials path.
    let home = home_with_cli_config(
        r#"{"current":"ecs","profiles":[{"name":"ecs","mode":"EcsRamRole","ram_role_name":"NamedRole"}]}"#,
        0o600,
    );
    let mut opts = lib_opts(&[("HOME", home.path().to_str().expect("utf-8"))]);
    opts.metadata_endpoint = Some(fake.url.clone());
    opts.sts_endpoint = Some(fake.url.clone());
    let r = chain::resolve(&opts).await.expect("ecs profile");
    assert_eq!(r.provider, "cli_profile/ecs_ram_role");
    let paths: Vec<String> = fake.imds_calls().into_iter().map(|c| c.path).collect();
    assert!(
        !paths.iter().any(|p| p.ends_with("security-credentials/")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("security-credentials/NamedRole")),
        "{paths:?}"
    );

    // INI oidc_role_arn: AssumeRoleWithOIDC with the file named in the section.
    let tmp = tempfile::tempdir().expect("tempdir");
    let token = tmp.path().join("token");
    write_file(&token, "jwt-from-ini", 0o600);
    let ini = tmp.path().join("credentials");
    write_file(
        &ini,
        &format!(
            "[default]\ntype = oidc_role_arn\nrole_arn = acs:ram::1:role/r\noidc_provider_arn = acs:ram::1:oidc-provider/p\noidc_token_file_path = {}\nrole_session_name = ini-session\n",
            token.display()
        ),
        0o600,
    );
    let empty = tempfile::tempdir().expect("tempdir");
    let mut opts = lib_opts(&[
        ("HOME", empty.path().to_str().expect("utf-8")),
        (
            "ALIBABA_CLOUD_CREDENTIALS_FILE",
            ini.to_str().expect("utf-8"),
        ),
        ("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true"),
    ]);
    opts.sts_endpoint = Some(fake.url.clone());
    let r = chain::resolve(&opts).await.expect("ini oidc");
    assert_eq!(r.provider, "profile/oidc_role_arn");
    let call = fake.sts_calls().pop().expect("an STS call");
    assert_eq!(
        (
            call.action.as_str(),
            call.params["RoleSessionName"].as_str()
        ),
        ("AssumeRoleWithOIDC", "ini-session")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_flags_are_validated_before_anything_runs() {
    let sim = Sim::start(&drifted_a().key("testid", "testsecret")).await;
    let folder = drop_a();
    let r = pass(&sim, &folder, &["--sts-endpoint", "http://192.0.2.1/"], &[]).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("--sts-endpoint") && r.stderr.contains("--insecure-http"),
        "{}",
        r.stderr
    );
    let r = pass(&sim, &folder, &["--endpoint-type", "private"], &[]).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    let r = pass(
        &sim,
        &folder,
        &[],
        &[("SGPOLICY_METADATA_ENDPOINT", Some("http://192.0.2.1"))],
    )
    .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(sim.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_uses_the_chain_and_exports_credential_refresh_health() {
    let issued = ("STS.daemon", "daemon-secret-r4", "daemon-token-t5");
    let fake = Fake::start(FakeState {
        oidc_token: Some("jwt-daemon".into()),
        fixed: Some((issued.0.into(), issued.1.into(), issued.2.into())),
        ..FakeState::default()
    })
    .await;
    let sim = Sim::start(&drifted_a().sts_key(issued.0, issued.1, issued.2)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let token_file = tmp.path().join("token");
    write_file(&token_file, "jwt-daemon", 0o600);
    let folder = drop_a();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("--policies")
        .arg(folder.path())
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALIBABA_CLOUD_ENDPOINT_ECS", &sim.url)
        .env("ALIBABA_CLOUD_ENDPOINT_ACTIONTRAIL", &sim.url)
        .env("ALIBABA_CLOUD_ENDPOINT_STS", &fake.url)
        .env("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r")
        .env(
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1:oidc-provider/p",
        )
        .env("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file)
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("RUST_LOG", "sgpolicy=debug");
    let d = Daemon::spawn(cmd).await;
    // The start-up pass fixes the drift with the STS credentials from AssumeRoleWithOIDC.
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    assert_eq!(key_ids(&sim), [issued.0]);
    let (_, text) = d.get("/metrics").await;
    let expiry = text
        .lines()
        .find(|l| {
            l.starts_with(
                "sgpolicy_credentials_expiry_timestamp_seconds{provider=\"oidc_role_arn\"}",
            )
        })
        .unwrap_or_else(|| panic!("no expiry gauge:\n{text}"));
    let value: f64 = expiry
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number");
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(value > now + 3000.0 && value < now + 3700.0, "{expiry}");
    assert!(
        text.contains("sgpolicy_credentials_refresh_failures{provider=\"oidc_role_arn\"} 0"),
        "{text}"
    );
}
