//! ActionTrail events drive targeted reads: a console flip is corrected through a push (EventBridge)
//! or a pull (LookupEvents) with one read of that group only; duplicates, own writes and undeclared
//! groups cost no read; a missed event is left to the resync; the receiver refuses what it must; a
//! LookupEvents 403 degrades the daemon without stopping it. Every process and call is real: the
//! binary, the simulator's EventBridge pushing over loopback HTTP, signed LookupEvents calls.

use super::*;
use sgpolicy_sim::{ConsoleActor, EventBridgeConfig, PushTarget, TrailConfig};
use std::time::Duration;

const TOKEN: &str = "s3cret-bearer-for-tests";

/// `sg-a`, `sg-b`, `sg-c` declared Drop and in sync; `sg-loose` exists but nobody declares it.
async fn estate() -> (Sim, Folder) {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-a", Policy::Drop)
            .group(HZ, "sg-b", Policy::Drop)
            .group(HZ, "sg-c", Policy::Drop)
            .group(HZ, "sg-loose", Policy::Accept),
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

fn alice() -> ConsoleActor {
    ConsoleActor {
        user_name: Some("alice".into()),
        source_ip_address: Some("203.0.113.7".into()),
        ..ConsoleActor::default()
    }
}

/// The token and report files of a push daemon, outside the watched policy folder.
struct Side {
    dir: tempfile::TempDir,
}

impl Side {
    fn new() -> Side {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        Side { dir }
    }

    fn token(&self) -> String {
        self.dir.path().join("token").display().to_string()
    }

    fn report(&self) -> std::path::PathBuf {
        self.dir.path().join("report.json")
    }

    /// The last pass report once `cond` holds for it.
    async fn wait_report(
        &self,
        what: &str,
        cond: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        eventually(what, DEADLINE, || async {
            let text = std::fs::read_to_string(self.report()).unwrap_or_default();
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(v) if cond(&v) => Ok(v),
                _ => Err(text),
            }
        })
        .await
    }
}

/// A loopback address nobody listens on yet, for a receiver the simulator must know in advance.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Sends `POST /events` with the test token announcing a body of `len` bytes, sends none of it, and
/// returns the status of the answer.
async fn announce_body(addr: &str, len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(DEADLINE, tcp.read(&mut answer))
        .await
        .expect("an answer before the body")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).to_string();
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

/// Reads of one group's attribute so far.
fn reads_of(sim: &Sim, id: &str) -> usize {
    sim.calls_of("DescribeSecurityGroupAttribute")
        .iter()
        .filter(|c| c.group_id.as_deref() == Some(id))
        .count()
}

/// EventBridge delivers every event to `addr`'s receiver with the test token.
fn pushing_to(sim: &Sim, addr: &str, duplicate_rate: f64, loss_rate: f64) {
    let target: PushTarget = serde_json::from_value(serde_json::json!({
        "url": format!("http://{addr}/events"),
        "token": TOKEN,
        "duplicateRate": duplicate_rate,
        "lossRate": loss_rate,
    }))
    .expect("a push target");
    sim.sim
        .set_eventbridge(EventBridgeConfig {
            targets: vec![target],
        })
        .unwrap();
}

/// A daemon with only the push receiver on (no polling), its report in `side`, after its start-up
/// pass.
async fn push_daemon(
    sim: &Sim,
    folder: &Folder,
    side: &Side,
    addr: &str,
    extra: &[&str],
) -> Daemon {
    let (token, report) = (side.token(), side.report());
    let mut args = vec![
        "--events-poll",
        "0",
        "--events-addr",
        addr,
        "--events-token-file",
        token.as_str(),
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let d = Daemon::start(sim, folder.path(), &args).await;
    d.wait_metrics("the start-up pass", |m| {
        m.sum("sgpolicy_passes_total", &["trigger=\"startup\""]) >= 1.0
    })
    .await;
    d
}

#[tokio::test]
async fn a_pushed_console_flip_is_corrected_with_one_targeted_read_and_names_its_author() {
    let (sim, folder) = estate().await;
    let (side, addr) = (Side::new(), free_addr());
    pushing_to(&sim, &addr, 1.0, 0.0);
    let d = push_daemon(&sim, &folder, &side, &addr, &[]).await;
    // Every declared group was read once at start-up.
    assert_eq!(reads_of(&sim, "sg-b"), 1);

    let event_id = sim
        .sim
        .flip_in_console(HZ, "sg-a", Policy::Accept, &alice())
        .expect("sg-a exists");
    eventually("sg-a to be Drop again", DEADLINE, || async {
        match sim.policy(HZ, "sg-a") {
            Policy::Drop if !sim.effective_writes().is_empty() => Ok(()),
            p => Err(d.saw(format!("sg-a is {p}"))),
        }
    })
    .await;
    let audit = d.wait_log("changed_by=ram-user alice").await;
    assert!(
        audit.contains(&event_id),
        "the audit line names the event: {audit}"
    );
    assert!(
        audit.contains("ConsoleOperation") && audit.contains("203.0.113.7"),
        "{audit}"
    );

    // Every event was pushed twice: the second copy is a duplicate and costs nothing. sg-a was read
    // at start-up, once for the event and once to verify the write; nothing else was read again.
    d.wait_metrics("the duplicate counted", |m| {
        m.sum("sgpolicy_events_total", &["result=\"duplicate\""]) >= 1.0
    })
    .await;
    assert_eq!(reads_of(&sim, "sg-a"), 3, "{:#?}", sim.calls());
    assert_eq!((reads_of(&sim, "sg-b"), reads_of(&sim, "sg-c")), (1, 1));
    assert_eq!(sim.effective_writes().len(), 1);

    let json = side
        .wait_report("the report naming the author", |v| {
            v["groups"][0]["changedBy"].is_object()
        })
        .await;
    let by = &json["groups"][0]["changedBy"];
    assert_eq!(json["groups"][0]["id"], "sg-a");
    assert_eq!(json["groups"][0]["outcome"], "changed");
    assert_eq!(by["type"], "ram-user");
    assert_eq!(by["name"], "alice");
    assert_eq!(by["eventType"], "ConsoleOperation");
    assert_eq!(by["sourceIpAddress"], "203.0.113.7");
    assert_eq!(by["eventId"], event_id.as_str());
    let m = d
        .wait_metrics("the correction by cause", |m| {
            m.sum("sgpolicy_corrections_by_cause_total", &["cause=\"event\""]) == 1.0
        })
        .await;
    assert_eq!(
        m.sum(
            "sgpolicy_corrections_by_cause_total",
            &["actor_type=\"ram-user\""]
        ),
        1.0,
        "{}",
        m.text
    );
    // Every governed group was read at start-up, so the oldest read is younger than the test.
    let age = m
        .values
        .get("sgpolicy_oldest_verification_age_seconds")
        .copied()
        .expect("the verification age is exported");
    assert!(age < DEADLINE.as_secs_f64() * 4.0, "{age}");
}

#[tokio::test]
async fn own_writes_and_undeclared_groups_cause_no_read() {
    let (sim, folder) = estate().await;
    // sg-c drifted before the daemon starts: its start-up correction is sgpolicy's own write, whose
    // event EventBridge pushes like any other.
    sim.sim.set_policy(HZ, "sg-c", Policy::Accept);
    let (side, addr) = (Side::new(), free_addr());
    pushing_to(&sim, &addr, 0.0, 0.0);
    let d = push_daemon(&sim, &folder, &side, &addr, &[]).await;
    assert_eq!(sim.effective_writes().len(), 1);
    d.wait_metrics("the own write's event ignored", |m| {
        m.sum("sgpolicy_events_total", &["result=\"ignored_own_write\""]) == 1.0
    })
    .await;
    sim.sim
        .flip_in_console(HZ, "sg-loose", Policy::Drop, &alice())
        .expect("sg-loose exists");
    let m = d
        .wait_metrics("the undeclared group's event ignored", |m| {
            m.sum("sgpolicy_events_total", &["result=\"ignored_ungoverned\""]) == 1.0
        })
        .await;
    assert_eq!(
        m.sum("sgpolicy_events_total", &["result=\"targeted\""]),
        0.0,
        "{}",
        m.text
    );
    // Start-up read each declared group once and verified sg-c's write; nothing read since.
    assert_eq!(reads_of(&sim, "sg-loose"), 0);
    assert_eq!((reads_of(&sim, "sg-a"), reads_of(&sim, "sg-c")), (1, 2));
}

#[tokio::test]
async fn the_receiver_refuses_missing_tokens_huge_bodies_and_non_json() {
    let (sim, folder) = estate().await;
    let (side, addr) = (Side::new(), free_addr());
    let d = push_daemon(&sim, &folder, &side, &addr, &[]).await;
    let url = format!("http://{addr}/events");
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, token: Option<&str>| {
        let mut r = http.post(&url).body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("answer").status().as_u16();
    assert_eq!(status(post(b"{}".to_vec(), None).await), 401);
    assert_eq!(status(post(b"{}".to_vec(), Some("wrong")).await), 401);
    // Announced as 300 KiB: refused from the header, before a byte of the body is read (a client
    // still sending it may see the connection close, so this one speaks HTTP by hand).
    assert_eq!(announce_body(&addr, 300 * 1024).await, 413);
    assert_eq!(status(post(b"not json".to_vec(), Some(TOKEN)).await), 400);
    let other = serde_json::json!({"specversion": "1.0", "id": "x-1", "source": "acs.actiontrail",
        "data": {"eventName": "CreateSecurityGroup", "eventId": "e-x"}});
    assert_eq!(
        status(post(other.to_string().into_bytes(), Some(TOKEN)).await),
        202
    );
    let m = d
        .wait_metrics("the other event ignored", |m| {
            m.sum("sgpolicy_events_total", &["result=\"ignored_other_event\""]) == 1.0
        })
        .await;
    for (result, n) in [
        ("rejected_unauthorized", 2.0),
        ("rejected_too_large", 1.0),
        ("rejected_not_json", 1.0),
    ] {
        let series = format!("result=\"{result}\"");
        assert_eq!(m.sum("sgpolicy_events_total", &[&series]), n, "{}", m.text);
    }
    // Nothing the receiver refused or ignored caused a read.
    assert_eq!(reads_of(&sim, "sg-a"), 1);
}

#[tokio::test]
async fn a_missed_event_is_corrected_by_the_resync() {
    let (sim, folder) = estate().await;
    let (side, addr) = (Side::new(), free_addr());
    pushing_to(&sim, &addr, 0.0, 1.0);
    let d = push_daemon(&sim, &folder, &side, &addr, &["--interval", "2s"]).await;
    sim.sim
        .flip_in_console(HZ, "sg-b", Policy::Accept, &alice())
        .expect("sg-b exists");
    eventually("sg-b to be Drop again", DEADLINE, || async {
        match sim.policy(HZ, "sg-b") {
            Policy::Drop => Ok(()),
            p => Err(d.saw(format!("sg-b is {p}"))),
        }
    })
    .await;
    let m = d
        .wait_metrics("the resync's correction", |m| {
            m.sum("sgpolicy_corrections_by_cause_total", &["cause=\"resync\""]) == 1.0
        })
        .await;
    assert_eq!(
        m.sum("sgpolicy_corrections_by_cause_total", &["cause=\"event\""]),
        0.0
    );
    // EventBridge had the flip's event and lost it: nothing was delivered.
    let deliveries = sim.sim.deliveries();
    assert!(
        !deliveries.is_empty(),
        "the flip's event reached EventBridge"
    );
    assert!(
        deliveries.iter().all(|x| x.outcome == "lost"),
        "{deliveries:#?}"
    );
}

#[tokio::test]
async fn a_polled_console_flip_is_corrected_once_though_overlapping_polls_return_it_again() {
    let (sim, folder) = estate().await;
    sim.sim
        .set_actiontrail(TrailConfig {
            query_delay_seconds: 0,
            ..sim.sim.actiontrail()
        })
        .unwrap();
    let d = Daemon::start(
        &sim,
        folder.path(),
        &["--events-poll", "10s", "--actiontrail-endpoint", &sim.url],
    )
    .await;
    d.wait_metrics("the start-up pass", |m| {
        m.sum("sgpolicy_passes_total", &["trigger=\"startup\""]) >= 1.0
    })
    .await;
    let event_id = sim
        .sim
        .flip_in_console(HZ, "sg-a", Policy::Accept, &alice())
        .expect("sg-a exists");
    eventually("sg-a to be Drop again", Duration::from_secs(60), || async {
        match sim.policy(HZ, "sg-a") {
            Policy::Drop => Ok(()),
            p => Err(d.saw(format!("sg-a is {p}"))),
        }
    })
    .await;
    let audit = d.wait_log("changed_by=ram-user alice").await;
    assert!(audit.contains(&event_id), "{audit}");
    // Wait for one more poll: its window still holds the flip, and the flip's event id is known.
    let lookups = sim.calls_of("LookupEvents").len();
    eventually("another poll", Duration::from_secs(60), || async {
        let n = sim.calls_of("LookupEvents").len();
        if n > lookups {
            Ok(())
        } else {
            Err(format!("{n} LookupEvents calls"))
        }
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        reads_of(&sim, "sg-a"),
        3,
        "start-up, the event, the verification"
    );
    assert_eq!((reads_of(&sim, "sg-b"), reads_of(&sim, "sg-c")), (1, 1));
    assert_eq!(
        m.sum(
            "sgpolicy_events_total",
            &["source=\"pull\"", "result=\"targeted\""]
        ),
        1.0,
        "{}",
        m.text
    );
    // The correction's own write was polled too (the poll after it), and ignored as sgpolicy's.
    d.wait_metrics("the own write's event ignored", |m| {
        m.sum(
            "sgpolicy_events_total",
            &["source=\"pull\"", "result=\"ignored_own_write\""],
        ) == 1.0
    })
    .await;
}

#[tokio::test]
async fn a_forbidden_lookup_events_degrades_readiness_and_the_daemon_carries_on() {
    let sim = Sim::start_yaml(
        "accessKeys:\n  - id: testid\n    secret: testsecret\n    deniedActions: [LookupEvents]\n\
         securityGroups:\n  - {id: sg-a, region: cn-hangzhou, innerAccessPolicy: Accept}\n",
    )
    .await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Policy::Drop).yaml(),
    );
    let d = Daemon::start(
        &sim,
        folder.path(),
        &["--events-poll", "10s", "--actiontrail-endpoint", &sim.url],
    )
    .await;
    let warning = d.wait_log("actiontrail:LookupEvents").await;
    assert!(warning.contains("WARN"), "{warning}");
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("degraded: events unavailable:"), "{body}");
    // The gauge follows within a heartbeat; the pull source was up (1) before the refusal.
    d.wait_metrics("the pull source down", |m| {
        m.values.get("sgpolicy_events_available{source=\"pull\"}") == Some(&0.0)
    })
    .await;
    // The resync still did its job.
    assert_eq!(sim.policy(HZ, "sg-a"), Policy::Drop);
}

#[tokio::test]
async fn an_events_addr_without_a_usable_token_file_exits_64_before_binding() {
    let (sim, folder) = estate().await;
    let side = Side::new();
    let empty = side.dir.path().join("empty-token");
    std::fs::write(&empty, "  \n").unwrap();
    let missing = side.dir.path().join("no-such-token");
    for (file, says) in [(&empty, "is empty"), (&missing, "No such file")] {
        let out = run(
            &sim,
            &[
                "--policies",
                folder.path().to_str().unwrap(),
                "--events-addr",
                "127.0.0.1:0",
                "--events-token-file",
                file.to_str().unwrap(),
            ],
            &[],
        )
        .await;
        assert_eq!(out.code, 64, "{}", out.stderr);
        assert!(out.stderr.contains(says), "{}", out.stderr);
        assert!(!out.stderr.contains("serving"), "{}", out.stderr);
    }
}

#[tokio::test]
async fn a_fight_found_through_events_names_the_other_party() {
    let (sim, folder) = estate().await;
    let (side, addr) = (Side::new(), free_addr());
    pushing_to(&sim, &addr, 0.0, 0.0);
    let d = push_daemon(
        &sim,
        &folder,
        &side,
        &addr,
        &["--fight-threshold", "2", "--fight-hold", "1h"],
    )
    .await;
    let corrections = |n: f64| {
        move |m: &Metrics| m.sum("sgpolicy_corrections_by_cause_total", &["cause=\"event\""]) == n
    };
    // alice flips sg-a three times, each after the previous correction was counted.
    for n in 1..=3 {
        sim.sim
            .flip_in_console(HZ, "sg-a", Policy::Accept, &alice())
            .expect("sg-a exists");
        d.wait_metrics(&format!("correction {n}"), corrections(f64::from(n)))
            .await;
    }
    let warning = d.wait_log("was changed back 2 times").await;
    assert!(warning.contains("fighting ram-user alice"), "{warning}");
}
