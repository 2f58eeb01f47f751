//! Differential test: the official Python SDK's default credential chain (`alibabacloud-credentials`)
//! and sgpolicy's chain, given the same environment and files, pick the same credentials. Covers the
//! links that need no network (environment, CLI config.json, INI file), their order, profile choice
//! and switches. Skipped without the SDK's Python (see sdk.rs), required under CI.

use crate::sdk::python;
use sgpolicy::credentials::chain::{self, ChainOptions};
use sgpolicy::ecs::credentials::{CredentialSource, Secret};
use std::collections::BTreeMap;
use std::path::Path;

/// What a chain chose: `(provider without the "default/" prefix, key id, has token)`, or `None`.
type Choice = Option<(String, String, bool)>;

async fn python_choice(python: &Path, env: &BTreeMap<String, String>) -> Choice {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/credential_chain.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env_clear()
        .envs(env)
        .output()
        .await
        .expect("run python");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("{e}: {line}\n{}", String::from_utf8_lossy(&out.stderr)));
    if v.get("error").is_some() {
        return None;
    }
    let provider = v["provider"].as_str().unwrap_or_default();
    Some((
        provider.trim_start_matches("default/").to_string(),
        v["id"].as_str().unwrap_or_default().to_string(),
        v["token"].as_str().is_some_and(|t| !t.is_empty()),
    ))
}

async fn our_choice(env: &BTreeMap<String, String>) -> Choice {
    let opts = ChainOptions {
        env: env.clone(),
        ..ChainOptions::default()
    };
    let r = chain::resolve(&opts).await.ok()?;
    let c = r.current().ok()?;
    Some((
        r.provider.clone(),
        c.access_key_id,
        c.security_token.as_ref().map(Secret::expose).is_some(),
    ))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const CONFIG: &str = r#"{"current": "a", "profiles": [
  {"name": "a", "mode": "AK", "access_key_id": "CLIa", "access_key_secret": "sa"},
  {"name": "b", "mode": "StsToken", "access_key_id": "CLIb", "access_key_secret": "sb", "sts_token": "tb"}]}"#;

const INI: &str = "[default]\ntype = access_key\naccess_key_id = INIdefault   # a comment\naccess_key_secret = s1\n\n[b]\ntype = access_key\naccess_key_id = INIb\naccess_key_secret = s2\n\n[only]\ntype = access_key\naccess_key_id = INIonly\naccess_key_secret = s3\n";

#[tokio::test(flavor = "multi_thread")]
async fn the_official_python_chain_and_ours_pick_the_same_credentials() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the SDK credential-chain comparison: run scripts/test.sh"
        );
        eprintln!("skipped: no Python with alibabacloud-credentials (set SGPOLICY_PYTHON)");
        return;
    };
    let home_cli = tempfile::tempdir().expect("tempdir");
    write(&home_cli.path().join(".aliyun/config.json"), CONFIG);
    let home_both = tempfile::tempdir().expect("tempdir");
    write(&home_both.path().join(".aliyun/config.json"), CONFIG);
    write(&home_both.path().join(".alibabacloud/credentials.ini"), INI);
    let home_ini = tempfile::tempdir().expect("tempdir");
    write(&home_ini.path().join(".alibabacloud/credentials.ini"), INI);
    let ini_file = home_ini.path().join(".alibabacloud/credentials.ini");
    let empty = tempfile::tempdir().expect("tempdir");
    let h = |d: &tempfile::TempDir| d.path().to_str().expect("utf-8").to_string();

    let scenarios: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "env with token",
            vec![
                ("HOME", h(&home_both)),
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVid".into()),
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s".into()),
                ("ALIBABA_CLOUD_SECURITY_TOKEN", "t".into()),
            ],
        ),
        (
            "half-set env falls through",
            vec![
                ("HOME", h(&home_cli)),
                ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENVid".into()),
            ],
        ),
        ("config.json current", vec![("HOME", h(&home_cli))]),
        (
            "config.json profile by env",
            vec![
                ("HOME", h(&home_cli)),
                ("ALIBABA_CLOUD_PROFILE", "b".into()),
            ],
        ),
        ("config.json before INI", vec![("HOME", h(&home_both))]),
        (
            "CLI profile disabled",
            vec![
                ("HOME", h(&home_both)),
                ("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true".into()),
            ],
        ),
        (
            "profile missing from config.json, found in INI",
            vec![
                ("HOME", h(&home_both)),
                ("ALIBABA_CLOUD_PROFILE", "only".into()),
            ],
        ),
        ("INI default location", vec![("HOME", h(&home_ini))]),
        (
            "INI by env path and section",
            vec![
                ("HOME", h(&empty)),
                (
                    "ALIBABA_CLOUD_CREDENTIALS_FILE",
                    ini_file.to_str().expect("utf-8").into(),
                ),
                ("ALIBABA_CLOUD_PROFILE", "b".into()),
            ],
        ),
        ("nothing anywhere", vec![("HOME", h(&empty))]),
    ];
    let mut mismatches = Vec::new();
    let mut found = 0;
    for (name, vars) in &scenarios {
        let mut env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        // Neither chain may reach for the real metadata service.
        env.insert("ALIBABA_CLOUD_ECS_METADATA_DISABLED".into(), "true".into());
        let theirs = python_choice(&python, &env).await;
        let ours = our_choice(&env).await;
        found += usize::from(theirs.is_some());
        if theirs != ours {
            mismatches.push(format!("{name}: SDK {theirs:?}, sgpolicy {ours:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert_eq!(
        found,
        scenarios.len() - 1,
        "only the last scenario has no credentials"
    );
}
