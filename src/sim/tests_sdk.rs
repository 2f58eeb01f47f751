//! Runs the official Python SDK scripts in `tests/sdk/` against an in-process simulator.
//!
//! Ignored by default because it needs `.venv` with the SDKs (see `tests/sdk/README.md`); run it with
//! `cargo test --lib sim::tests_sdk -- --ignored`.

use super::*;
use std::path::Path;

fn run_script(endpoint: &str, script: &str) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("SIM_PYTHON")
        .unwrap_or_else(|_| root.join(".venv/bin/python").display().to_string());
    let out = std::process::Command::new(python)
        .arg(root.join("tests/sdk").join(script))
        .arg(endpoint)
        .output();
    match out {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("cannot run python: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Python SDKs in .venv"]
async fn official_python_sdks_work_unchanged() {
    let seed_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/seed.yaml"))
            .expect("tests/sdk/seed.yaml");
    let sim = Simulator::new(Seed::from_yaml(&seed_text).expect("seed"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim.serve(listener, async move {
        let _ = rx.await;
    }));
    let mut failures = Vec::new();
    for script in ["legacy_sdk.py", "tea_sdk.py"] {
        let ep = endpoint.clone();
        let (ok, output) = tokio::task::spawn_blocking(move || run_script(&ep, script))
            .await
            .expect("join");
        println!("--- {script}\n{output}");
        if !ok {
            failures.push(script);
        }
    }
    let _ = tx.send(());
    let _ = server.await;
    assert!(failures.is_empty(), "failed: {failures:?}");
}
