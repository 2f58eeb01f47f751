//! Hostile connections and events (issue 18, items 5, 6 and 8): idle and half-sent connections never
//! starve the listeners or the daemon's files, an event flood never delays a real correction, and a
//! guessable token is refused. The real binary, real sockets over loopback, the simulator's
//! EventBridge pushing with the real token.

use super::*;
use sgpolicy_sim::{ConsoleActor, EventBridgeConfig, PushTarget};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "hostile-net-bearer-token-0123456789";

/// `sg-a`, `sg-b`, `sg-c` declared Drop and in sync; `sg-new` exists (Accept) and nobody declares it
/// yet.
async fn estate() -> (Sim, Folder) {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-a", Policy::Drop)
            .group(HZ, "sg-b", Policy::Drop)
            .group(HZ, "sg-c", Policy::Drop)
            .group(HZ, "sg-new", Policy::Accept),
    )
    .await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b", "sg-c"], Policy::Drop)
            .yaml(),
    );
    (sim, folder)
}

/// A loopback address nobody listens on yet, for a receiver the simulator must know in advance.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A token file outside the policy folder.
fn token_file(dir: &tempfile::TempDir, token: &str) -> String {
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path.display().to_string()
}

/// EventBridge delivers every event to `addr`'s receiver with the test token.
fn pushing_to(sim: &Sim, addr: &str) {
    let target: PushTarget = serde_json::from_value(serde_json::json!({
        "url": format!("http://{addr}/events"), "token": TOKEN,
    }))
    .expect("a push target");
    sim.sim
        .set_eventbridge(EventBridgeConfig {
            targets: vec![target],
        })
        .unwrap();
}

fn mallory() -> ConsoleActor {
    ConsoleActor {
        user_name: Some("mallory".into()),
        ..ConsoleActor::default()
    }
}

/// A push daemon (no polling) whose open files are limited to `files`, the way systemd's default
/// `LimitNOFILE=1024` limits them, after its start-up pass.
async fn push_daemon_with_files(
    sim: &Sim,
    folder: &Folder,
    token: &str,
    addr: &str,
    files: u64,
) -> Daemon {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("--policies")
        .arg(folder.path())
        .args(["--metrics-addr", "127.0.0.1:0", "--max-rps", "5000"])
        .args(["--events-poll", "0", "--events-addr", addr])
        .args(["--events-token-file", token])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")
        .env("ALIBABA_CLOUD_ENDPOINT_ECS", &sim.url)
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("RUST_LOG", "sgpolicy=debug");
    // SAFETY: setrlimit is async-signal-safe and touches only the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let d = Daemon::spawn(cmd).await;
    d.wait_metrics("the start-up pass", |m| {
        m.sum("sgpolicy_passes_total", &["trigger=\"startup\""]) >= 1.0
    })
    .await;
    d
}

/// Opens `n` connections to `addr` at once and sends nothing on them. A connection the server's
/// kernel never completes (a full backlog) is left out: what counts is what the daemon does next.
async fn idle_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    let attempts = (0..n).map(|_| async {
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .ok()
            .and_then(Result::ok)
    });
    futures::future::join_all(attempts)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// `GET /readyz` on `base`, given up on after two seconds (a connection stuck in a backlog).
async fn readyz(base: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    match client.get(format!("{base}/readyz")).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

/// Reads until the peer closes; `Err` with what it got when it is still open after [`DEADLINE`].
async fn closed_by_peer(tcp: &mut TcpStream) -> Result<String, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {DEADLINE:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn eleven_hundred_idle_connections_on_each_listener_leave_readyz_events_and_the_folder_working_within_1024_files(
) {
    let (sim, folder) = estate().await;
    let (side, addr) = (tempfile::tempdir().unwrap(), free_addr());
    pushing_to(&sim, &addr);
    let d = push_daemon_with_files(&sim, &folder, &token_file(&side, TOKEN), &addr, 1024).await;
    let metrics = d.metrics_url.clone().expect("metrics on");
    let metrics_addr = metrics.trim_start_matches("http://").to_string();

    let (on_events, on_metrics) = tokio::join!(
        idle_connections(&addr, 1100),
        idle_connections(&metrics_addr, 1100)
    );
    assert!(
        on_events.len() + on_metrics.len() > 1024,
        "the flood itself"
    );

    // A probe is answered while the idle connections are held.
    eventually("/readyz answered", DEADLINE, || async {
        match readyz(&metrics).await {
            Ok(200) => Ok(()),
            other => Err(d.saw(format!("{other:?}"))),
        }
    })
    .await;
    // A console flip reaches the receiver with the token and is corrected.
    sim.sim
        .flip_in_console(HZ, "sg-a", Policy::Accept, &mallory())
        .expect("sg-a exists");
    eventually(
        "sg-a corrected through its pushed event",
        DEADLINE,
        || async {
            match sim.policy(HZ, "sg-a") {
                Policy::Drop if !sim.effective_writes().is_empty() => Ok(()),
                p => Err(d.saw(format!("sg-a is {p}"))),
            }
        },
    )
    .await;
    // The folder can still be read: a new declaration is applied.
    folder.write(
        "new.yaml",
        &PolicyFile::in_region(HZ)
            .group("sg-new", Policy::Drop)
            .yaml(),
    );
    wait_policy(&sim, "sg-new", Policy::Drop, &d).await;
    assert!(
        d.lines_with("Too many open files").is_empty(),
        "{}",
        d.log_text()
    );
    drop((on_events, on_metrics));
}

#[tokio::test]
async fn a_half_sent_request_and_a_stalled_body_are_closed_by_the_listeners_timeouts() {
    let (sim, folder) = estate().await;
    let (side, addr) = (tempfile::tempdir().unwrap(), free_addr());
    let d = push_daemon_with_files(&sim, &folder, &token_file(&side, TOKEN), &addr, 1024).await;
    let metrics_addr = d
        .metrics_url
        .clone()
        .expect("metrics on")
        .trim_start_matches("http://")
        .to_string();

    for target in [&addr, &metrics_addr] {
        let mut half = TcpStream::connect(target).await.unwrap();
        half.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let got = closed_by_peer(&mut half).await;
        assert_eq!(got, Ok(String::new()), "a half-sent head on {target}");
    }
    // An authorised request whose body stops arriving is answered and closed.
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"id\":"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let got = closed_by_peer(&mut stalled).await.expect("closed");
    assert!(got.starts_with("HTTP/1.1 400"), "{got:?}");
}

#[tokio::test]
async fn a_token_of_fewer_than_16_bytes_exits_64_saying_so_without_printing_it() {
    let (sim, folder) = estate().await;
    let side = tempfile::tempdir().unwrap();
    let short = "fifteen-bytes!!";
    assert_eq!(short.len(), 15);
    let token = token_file(&side, short);
    let args = [
        "--policies",
        folder.path().to_str().unwrap(),
        "--events-addr",
        "127.0.0.1:0",
        "--events-token-file",
        &token,
    ];
    // A daemon that accepted the token would run on: it must exit at once instead.
    let out = tokio::time::timeout(DEADLINE, run(&sim, &args, &[]))
        .await
        .expect("the daemon refused to start");
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(out.stderr.contains("at least 16 bytes"), "{}", out.stderr);
    assert!(out.stderr.contains("/dev/urandom"), "{}", out.stderr);
    assert!(!out.stderr.contains(short), "{}", out.stderr);
    assert!(!out.stderr.contains("serving"), "{}", out.stderr);
}

/// One pushed envelope announcing that `id` was set to `sent` at `time` by mallory.
fn flood_envelope(n: usize, id: &str, sent: &str, time: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0", "id": format!("flood-{n}"), "source": "acs.actiontrail",
        "type": "actiontrail:ActionTrail:ApiCall", "aliyunregionid": HZ,
        "data": {
            "eventId": format!("flood-event-{n}"), "eventName": "ModifySecurityGroupPolicy",
            "eventTime": time, "eventType": "ApiCall", "acsRegion": HZ,
            "requestParameters": {"SecurityGroupId": id, "InnerAccessPolicy": sent},
            "userIdentity": {"type": "ram-user", "userName": "mallory"},
        }
    })
}

/// Reads of any group's attribute so far, in order: which group each read.
fn reads(sim: &Sim) -> Vec<String> {
    sim.calls_of("DescribeSecurityGroupAttribute")
        .into_iter()
        .filter_map(|c| c.group_id)
        .collect()
}

#[tokio::test]
async fn a_real_drift_is_read_within_two_batches_while_forty_thousand_flood_events_are_queued() {
    let flood_groups: Vec<String> = (0..3000).map(|i| format!("sg-flood-{i:04}")).collect();
    let sim = Sim::start(&Seed::new().groups(HZ, &flood_groups, Policy::Drop).group(
        HZ,
        "sg-real",
        Policy::Drop,
    ))
    .await;
    let folder = Folder::new().file(
        "estate.yaml",
        PolicyFile::in_region(HZ)
            .groups(&flood_groups, Policy::Drop)
            .group("sg-real", Policy::Drop)
            .yaml(),
    );
    let (side, addr) = (tempfile::tempdir().unwrap(), free_addr());
    pushing_to(&sim, &addr);
    let d = push_daemon_with_files(&sim, &folder, &token_file(&side, TOKEN), &addr, 4096).await;
    // Every read from now on takes a while, so the flood is still being read when the drift comes.
    sim.faults(serde_json::json!({"latencyMs": 100})).await;

    // The first half of the groups get events from before the start-up pass read them (announcing
    // drift, but long covered); the second half fresh events that sent the declared value.
    let old = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let now = chrono::Utc::now().to_rfc3339();
    let envelopes: Vec<serde_json::Value> = (0..40_000)
        .map(|n| {
            let group = n % 3000;
            let (sent, time) = if group < 1500 {
                ("Accept", &old)
            } else {
                ("Drop", &now)
            };
            flood_envelope(n, &flood_groups[group], sent, time)
        })
        .collect();
    let http = reqwest::Client::new();
    for chunk in envelopes.chunks(100) {
        let r = http
            .post(format!("http://{addr}/events"))
            .bearer_auth(TOKEN)
            .json(&chunk)
            .send()
            .await
            .expect("an answer");
        match r.status().as_u16() {
            202 => {}
            503 => assert!(r.headers().contains_key("retry-after"), "{r:?}"),
            other => panic!("the flood was answered {other}"),
        }
    }

    let before = reads(&sim).len();
    sim.sim
        .flip_in_console(HZ, "sg-real", Policy::Accept, &mallory())
        .expect("sg-real exists");
    wait_policy(&sim, "sg-real", Policy::Drop, &d).await;
    // The targeted lane's reads: a covered group (first half) is read only by the sweep, which
    // reads on beside the flood, the oldest read first (those), as asserted below.
    let after_flip: Vec<String> = reads(&sim)[before..]
        .iter()
        .filter(|g| !flood_groups[..1500].contains(g))
        .cloned()
        .collect();
    let first = after_flip
        .iter()
        .position(|g| g == "sg-real")
        .expect("sg-real was read");
    let batch = 32;
    assert!(
        first < 2 * batch,
        "sg-real was read after {first} other reads: {:?}",
        &after_flip[..first.min(80)]
    );
    // Events older than the start-up read cost nothing, however much drift they announce. The
    // sweep reads on (3,001 groups an hour: at most one group a tick, the oldest read, so these
    // first): a covered group read again is a sweep's read, never an event's (counted after the
    // reads, the ticks may miss only the one whose read was just made).
    let covered_reads = reads(&sim)
        .iter()
        .filter(|g| flood_groups[..1500].contains(g))
        .count();
    let sweep_ticks = d
        .metrics()
        .await
        .sum("sgpolicy_passes_total", &["trigger=\"sweep\""]);
    assert!(
        (1500..=1501 + sweep_ticks as usize).contains(&covered_reads),
        "one start-up read each, and only the sweep's since: {covered_reads} reads, {sweep_ticks} \
         sweep ticks"
    );
}

#[tokio::test]
async fn a_push_naming_someone_else_than_actiontrail_is_overruled_by_the_pull_with_a_warning() {
    let (sim, folder) = estate().await;
    // The event becomes queryable 3 s after it happened: the forged push comes first.
    sim.sim
        .set_actiontrail(sgpolicy_sim::TrailConfig {
            query_delay_seconds: 3,
            ..sim.sim.actiontrail()
        })
        .unwrap();
    let (side, addr) = (tempfile::tempdir().unwrap(), free_addr());
    let token = token_file(&side, TOKEN);
    let d = Daemon::start(
        &sim,
        folder.path(),
        &[
            "--events-poll",
            "10s",
            "--actiontrail-endpoint",
            &sim.url,
            "--events-addr",
            &addr,
            "--events-token-file",
            &token,
        ],
    )
    .await;
    d.wait_metrics("the start-up pass", |m| {
        m.sum("sgpolicy_passes_total", &["trigger=\"startup\""]) >= 1.0
    })
    .await;
    let alice = ConsoleActor {
        user_name: Some("alice".into()),
        ..ConsoleActor::default()
    };
    let event_id = sim
        .sim
        .flip_in_console(HZ, "sg-a", Policy::Accept, &alice)
        .expect("sg-a exists");
    // Someone holding the token pushes the same event naming mallory.
    let mut forged = flood_envelope(0, "sg-a", "Accept", &chrono::Utc::now().to_rfc3339());
    forged["data"]["eventId"] = serde_json::json!(event_id);
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/events"))
        .bearer_auth(TOKEN)
        .json(&forged)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 202);
    let warning = d.wait_log("the push named").await;
    assert!(
        warning.contains("mallory") && warning.contains("alice") && warning.contains(&event_id),
        "{warning}"
    );
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
}
