//! The status page of the real binary (`--status-addr`, `--status-auth-file`) against the simulator:
//! loopback without users serves, a wider address without users exits 64 before binding, a bad users
//! file exits 64 at its line, and with users every request needs their credentials (401 with a
//! challenge otherwise) while the password never reaches the log.

use super::*;

/// Written by `htpasswd -nbB alice 'correct horse battery'` (Apache 2.4, cost 5).
const ALICE: &str = "alice:$2y$05$1MI2yzQ8ZPrhFj2DstTwSOn.2lR1xaNJoON6g57cfn5H5OmtI86pa";

/// The simulator with two groups, one of them drifted, and a folder governing both.
async fn estate() -> (Sim, Folder) {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-a", Policy::Drop)
            .named("payments")
            .group(HZ, "sg-b", Policy::Accept),
    )
    .await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Policy::Drop)
            .yaml(),
    );
    (sim, folder)
}

impl Daemon {
    /// The status page's base URL, from the line the daemon logs when it serves it.
    pub(crate) async fn status_url(&self) -> String {
        let line = self.wait_log("serving the status page").await;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .expect("the status page's address in the log");
        format!("http://{addr}")
    }
}

/// GET `url`, with basic credentials when given: (status, `WWW-Authenticate`, body).
async fn get(url: &str, credentials: Option<(&str, &str)>) -> (u16, Option<String>, String) {
    let client = reqwest::Client::new();
    let mut request = client.get(url);
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, Some(password));
    }
    let r = request.send().await.expect("the status page answers");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string());
    (
        r.status().as_u16(),
        challenge,
        r.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn on_loopback_without_an_auth_file_the_page_and_its_data_are_served() {
    let (sim, folder) = estate().await;
    let d = Daemon::start(&sim, folder.path(), &["--status-addr", "127.0.0.1:0"]).await;
    let url = d.status_url().await;
    let groups = eventually("both groups in sync on /status.json", DEADLINE, || async {
        let (status, _, body) = get(&format!("{url}/status.json"), None).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        match (status, v["summary"]["inSync"].as_u64()) {
            (200, Some(2)) => Ok(v["groups"].clone()),
            _ => Err(d.saw(format!("{status} {body}"))),
        }
    })
    .await;
    assert_eq!(groups[0]["name"], "payments", "{groups}");
    assert_eq!(groups[1]["lastCorrection"]["cause"], "resync", "{groups}");
    let (status, _, html) = get(&format!("{url}/status"), None).await;
    assert_eq!(status, 200);
    assert!(html.contains("<script src=\"status.js\""), "{html}");

    // gzip for a client that asks (every browser), the same document once decompressed.
    let zipped = reqwest::Client::new()
        .get(format!("{url}/status.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let bytes = zipped.bytes().await.expect("body");
    let mut gunzip = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    std::io::Write::write_all(&mut gunzip.stdin.take().expect("stdin"), &bytes).expect("fed");
    let plain = gunzip.wait_with_output().expect("gunzipped").stdout;
    let v: serde_json::Value = serde_json::from_slice(&plain).expect("JSON once gunzipped");
    assert_eq!(v["groups"][0]["name"], "payments");
}

#[tokio::test]
async fn a_wider_address_without_an_auth_file_exits_64_naming_why_before_binding() {
    let (sim, folder) = estate().await;
    let out = run(
        &sim,
        &[
            "--policies",
            folder.path().to_str().unwrap(),
            "--status-addr",
            "0.0.0.0:0",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--status-addr 0.0.0.0:0 is not a loopback address")
            && out.stderr.contains("--status-auth-file"),
        "{}",
        out.stderr
    );
    assert!(sim.calls().is_empty(), "nothing was asked of the cloud");
}

#[tokio::test]
async fn a_bad_auth_file_exits_64_at_its_line_before_any_request() {
    let (sim, folder) = estate().await;
    let side = tempfile::tempdir().unwrap();
    let users = side.path().join("users");
    std::fs::write(
        &users,
        format!("{ALICE}\nbob:$apr1$Vk2b9$X0cA5p4h1n2o3q4r5s6t7.\n"),
    )
    .unwrap();
    let out = run(
        &sim,
        &[
            "--policies",
            folder.path().to_str().unwrap(),
            "--status-addr",
            "127.0.0.1:0",
            "--status-auth-file",
            users.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "--status-auth-file {}:2: expected user:$2y$",
            users.display()
        )),
        "{}",
        out.stderr
    );
    assert!(sim.calls().is_empty(), "nothing was asked of the cloud");
}

#[tokio::test]
async fn with_an_auth_file_every_request_needs_right_credentials_and_the_password_is_never_logged()
{
    let (sim, folder) = estate().await;
    let side = tempfile::tempdir().unwrap();
    let users = side.path().join("users");
    std::fs::write(&users, format!("# htpasswd -B\n{ALICE}\n")).unwrap();
    let d = Daemon::start(
        &sim,
        folder.path(),
        &[
            "--status-addr",
            "127.0.0.1:0",
            "--status-auth-file",
            users.to_str().unwrap(),
        ],
    )
    .await;
    let url = d.status_url().await;
    for path in [
        "/status",
        "/status.json",
        "/status.js",
        "/status/group.json",
        "/nothing",
    ] {
        for wrong in [
            None,
            Some(("alice", "correct horse")),
            Some(("bob", "correct horse battery")),
        ] {
            let (status, challenge, body) = get(&format!("{url}{path}"), wrong).await;
            assert_eq!(status, 401, "{path} with {wrong:?}: {body}");
            assert_eq!(
                challenge.as_deref(),
                Some("Basic realm=\"sgpolicy status\", charset=\"UTF-8\""),
                "{path}"
            );
            assert_eq!(
                body, "authentication required\n",
                "the same refusal whatever was wrong"
            );
        }
    }
    let right = Some(("alice", "correct horse battery"));
    let (status, _, body) = get(&format!("{url}/status.json"), right).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"],
        1
    );
    let (status, _, _) = get(&format!("{url}/status"), right).await;
    assert_eq!(status, 200);
    let log = d.log_text();
    for secret in [
        "correct horse",
        "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5",
        "YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A daemon on the simulator with users, serving a named group (its name hostile), a corrected
/// one and a held one (Drop -> Accept without --allow-open), and the status command's auth file.
struct Watched {
    _sim: Sim,
    _folder: Folder,
    daemon: Daemon,
    addr: String,
    side: tempfile::TempDir,
}

async fn watched() -> Watched {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-a", Policy::Drop)
            .named("web\u{1b}[31m\nFAKE ROW")
            .group(HZ, "sg-b", Policy::Accept)
            .group("cn-shanghai", "sg-c", Policy::Drop),
    )
    .await;
    let folder = Folder::new()
        .file(
            "prod.yaml",
            PolicyFile::in_region(HZ)
                .groups(["sg-a", "sg-b"], Policy::Drop)
                .yaml(),
        )
        .file(
            "open.yaml",
            PolicyFile::in_region("cn-shanghai")
                .group("sg-c", Policy::Accept)
                .yaml(),
        );
    let side = tempfile::tempdir().unwrap();
    let users = side.path().join("users");
    std::fs::write(&users, format!("{ALICE}\n")).unwrap();
    std::fs::write(side.path().join("auth"), "alice:correct horse battery\n").unwrap();
    std::fs::write(side.path().join("wrong"), "alice:correct horse\n").unwrap();
    let daemon = Daemon::start(
        &sim,
        folder.path(),
        &[
            "--status-addr",
            "127.0.0.1:0",
            "--status-auth-file",
            users.to_str().unwrap(),
        ],
    )
    .await;
    let addr = daemon.status_url().await.replace("http://", "");
    Watched {
        _sim: sim,
        _folder: folder,
        daemon,
        addr,
        side,
    }
}

impl Watched {
    /// `sgpolicy status --addr ADDR --auth-file AUTH EXTRA...`.
    async fn status(&self, auth: &str, extra: &[&str]) -> Run {
        let auth = self.side.path().join(auth);
        let mut args = vec![
            "status",
            "--addr",
            &self.addr,
            "--auth-file",
            auth.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&self._sim, &args, &[]).await
    }
}

#[tokio::test]
async fn sgpolicy_status_prints_the_pages_table_escaped_with_its_filters_and_as_json() {
    let w = watched().await;
    let held = eventually("sg-c held on the page", DEADLINE, || async {
        let out = w
            .status("auth", &["--output", "json", "--state", "held"])
            .await;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        match v["groups"].as_array().map(Vec::len) {
            Some(1) if out.code == 0 => Ok(v),
            _ => Err(w
                .daemon
                .saw(format!("{} {} {}", out.code, out.stdout, out.stderr))),
        }
    })
    .await;
    assert_eq!(held["groups"][0]["id"], "sg-c");
    assert_eq!(held["summary"]["heldBy"]["open"], 1);
    assert_eq!(
        held["summary"]["governed"], 3,
        "the summary is of every group"
    );

    let table = w.status("auth", &[]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ID ") && l.contains("LAST CORRECTION")),
        "{}",
        table.stdout
    );
    let sg_a = lines
        .iter()
        .find(|l| l.starts_with("sg-a "))
        .expect("sg-a's row");
    assert!(sg_a.contains("web\\u{1b}[31m\\nFAKE ROW"), "{sg_a}");
    assert!(
        !lines.iter().any(|l| l.starts_with("FAKE ROW")),
        "no forged line"
    );
    assert!(!table.stdout.contains('\u{1b}'));
    assert!(
        lines.contains(&"3 of 3 governed groups"),
        "{}",
        table.stdout
    );

    let region = w
        .status("auth", &["--region", HZ, "--file", "prod.yaml"])
        .await;
    let ids: Vec<&str> = region
        .stdout
        .lines()
        .filter(|l| l.starts_with("sg-"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(ids, ["sg-a", "sg-b"], "{}", region.stdout);
    let none = w
        .status("auth", &["--file", "open.yaml", "--region", HZ])
        .await;
    assert!(
        none.stdout.lines().any(|l| l == "0 of 3 governed groups"),
        "{}",
        none.stdout
    );
}

#[tokio::test]
async fn sgpolicy_status_says_when_credentials_are_missing_or_refused() {
    let w = watched().await;
    let refused = w.status("wrong", &[]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("refused the credentials of --auth-file (401)"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("correct horse"),
        "{}",
        refused.stderr
    );
    let none = run(&w._sim, &["status", "--addr", &w.addr], &[]).await;
    assert_eq!(none.code, 1, "{}", none.stderr);
    assert!(
        none.stderr
            .contains("wants credentials (401): give --auth-file FILE"),
        "{}",
        none.stderr
    );
    let usage = run(
        &w._sim,
        &["status", "--addr", &w.addr, "--state", "sideways"],
        &[],
    )
    .await;
    assert_eq!(usage.code, 64, "{}", usage.stderr);
}
