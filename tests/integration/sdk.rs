//! The official Alibaba Python SDKs, unchanged, against the simulator: the honest judge of its fidelity.
//!
//! Needs a Python with `aliyun-python-sdk-ecs` and `alibabacloud-ecs20140526` (scripts/test.sh makes
//! `.venv`). Outside CI the test is skipped with a notice when that Python is missing; under CI
//! (`CI` set) a missing SDK fails the test instead of silently passing. A script that needs more SDKs
//! names their modules on a `# requires: module ...` line; a Python without them fails the test with
//! the command that installs them (`tests/sdk/requirements.txt`).

use crate::harness::Sim;
use std::path::{Path, PathBuf};

/// The Python that has the official SDKs: `SGPOLICY_PYTHON`, else the project's `.venv`.
pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SGPOLICY_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.exists().then_some(venv)
}

/// The modules a script lists on its `# requires:` line (none without one).
fn required_modules(script: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(script).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("# requires:"))
        .map(|m| m.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Whether `python` can import every module.
async fn can_import(python: &Path, modules: &[String]) -> bool {
    modules.is_empty()
        || tokio::process::Command::new(python)
            .arg("-c")
            .arg(format!("import {}", modules.join(", ")))
            .output()
            .await
            .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn official_python_sdks_work_against_the_simulator_unchanged() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the SDK conformance test: run scripts/test.sh"
        );
        eprintln!("skipped: no .venv with the Alibaba SDKs (run scripts/test.sh)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    let seed = std::fs::read_to_string(dir.join("seed.yaml")).expect("tests/sdk/seed.yaml");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sdk")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "py")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("_sdk.py"))
        })
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 2,
        "expected one script per SDK in {}",
        dir.display()
    );
    for script in scripts {
        let modules = required_modules(&script);
        assert!(
            can_import(&python, &modules).await,
            "{} needs the Python modules {modules:?}, which {} cannot import: run `{} -m pip install -r tests/sdk/requirements.txt`",
            script.display(),
            python.display(),
            python.display()
        );
        // A fresh simulator per script: each starts from the seed.
        let sim = Sim::start_yaml(&seed).await;
        let endpoint = sim.url.trim_start_matches("http://").to_string();
        let out = tokio::process::Command::new(&python)
            .arg(&script)
            .env("SIM_ENDPOINT", &endpoint)
            .output()
            .await
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains(" passed, 0 failed"),
            "{} failed:\n{stdout}\n{stderr}",
            script.display()
        );
        assert!(
            !sim.calls().is_empty(),
            "the SDK really talked to the simulator"
        );
    }
}
