//! `--notify-config`: a file that cannot be used stops the daemon with exit 64 before any request,
//! naming the file, line and column, and never printing the sink's URL token or its secret.

use super::*;

#[tokio::test]
async fn a_bad_notify_config_exits_64_naming_file_and_line_before_any_request() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Policy::Drop)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a"], Policy::Drop)
            .yaml(),
    );
    let side = tempfile::tempdir().unwrap();
    let config = side.path().join("notify.yaml");
    std::fs::write(
        &config,
        "sinks:\n  - kind: slack\n    url: https://hooks.example/services/URLTOKEN\n    kinds: [corrected, drifted]\n  - kind: webhook\n    url: http://127.0.0.1:9/hook\n    secretFile: absent.secret\n",
    )
    .unwrap();
    let out = run(
        &sim,
        &[
            "--policies",
            folder.path().to_str().unwrap(),
            "--notify-config",
            config.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("notify.yaml:4:24: unknown notification kind \"drifted\""),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("URLTOKEN"), "{}", out.stderr);
    assert!(
        sim.calls().is_empty(),
        "no request before the config is usable"
    );
}
