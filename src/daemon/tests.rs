//! The daemon's shell in-process: [`serve`] on a socket the test bound, against the simulator on
//! loopback, stopped by a future the test completes. No process, no log scraping, no port race.

use super::*;
use crate::accounts::Clients;
use crate::ecs::credentials::Secret;
use crate::ecs::{ClientConfig, Credentials, EcsClient};
use crate::events::EventSettings;
use sgpolicy_sim::{Policy as SimPolicy, Seed, Simulator};
use std::time::Instant;

const SEED: &str = "accessKeys:
  - id: testid
    secret: testsecret
securityGroups:
  - id: sg-a
    region: cn-hangzhou
    innerAccessPolicy: Accept
";

const FOLDER: &str = "region: cn-hangzhou
groups:
  - id: sg-a
    innerAccessPolicy: Drop
";

/// The simulator serving on a loopback port; its URL.
async fn simulator() -> (Simulator, String) {
    let sim = Simulator::new(Seed::from_yaml(SEED).expect("seed"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = sim.clone();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    (sim, url)
}

fn clients(url: &str) -> Arc<Clients> {
    let creds = Credentials {
        access_key_id: "testid".into(),
        access_key_secret: Secret::new("testsecret"),
        security_token: None,
    };
    let config = ClientConfig {
        endpoint: Some(url.to_string()),
        ..ClientConfig::default()
    };
    let client = EcsClient::new(config, Arc::new(creds)).expect("client");
    Arc::new(Clients::single(client))
}

fn setup(policies: &std::path::Path) -> Setup {
    Setup {
        policies: policies.to_path_buf(),
        load: LoadOptions::default(),
        connect: crate::accounts::connect::ConnectSettings {
            endpoint: None,
            actiontrail_endpoint: None,
            endpoint_type: Default::default(),
            insecure_http: false,
            profile: None,
            sts_endpoint: None,
            metadata_endpoint: None,
            rate_limits: Default::default(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        },
        pass: PassOptions {
            verify_delay: Duration::ZERO,
            ..PassOptions::default()
        },
        settings: DaemonSettings {
            interval: Duration::from_secs(3600),
            // No event source: nothing but the simulator is ever asked anything.
            events: EventSettings {
                poll: None,
                receiver: None,
                ..EventSettings::default()
            },
            ..DaemonSettings::default()
        },
        report: None,
        shard: crate::shard::Shard::default(),
    }
}

/// Polls `probe` until it returns `Ok` (the one polling helper of these tests); the last `Err` says
/// what was seen instead when it never does.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(seen) => assert!(Instant::now() < deadline, "never {what}: {seen}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `url` until it answers 200; its body.
async fn until_ok(url: &str) -> String {
    eventually(&format!("a 200 from {url}"), || async {
        let r = reqwest::get(url).await.map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    })
    .await
}

#[tokio::test]
async fn serve_corrects_drift_on_the_port_its_caller_bound_and_returns_when_told_to_stop() {
    let (sim, url) = simulator().await;
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::write(folder.path().join("prod.yaml"), FOLDER).expect("policy file");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_hangup, hangups) = mpsc::channel(1);
    let shell = Shell {
        clients: clients(&url),
        credentials: None,
        listeners: Listeners {
            metrics: Some(listener),
            ..Listeners::default()
        },
        shutdown: async {
            let _ = stopped.await;
        },
        hangups,
    };
    let served = serve(setup(folder.path()), shell);
    let check = async {
        let ready = until_ok(&format!("http://{addr}/readyz")).await;
        assert!(ready.starts_with("ready"), "{ready}");
        assert_eq!(sim.policy_of("cn-hangzhou", "sg-a"), Some(SimPolicy::Drop));
        let metrics = until_ok(&format!("http://{addr}/metrics")).await;
        assert!(
            metrics.contains("sgpolicy_corrections_total 1"),
            "{metrics}"
        );
        stop.send(()).expect("serve is running");
    };
    tokio::join!(served, check);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the endpoint is closed once serve returned"
    );
}

/// A log captured in memory (the daemon's warnings, as a human would read them).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).to_string()
    }
}

const TOKEN: &str = "push-token-for-tests";

/// sg-d (declared Drop, in sync, rules none) with two members; sg-zz, nobody's, with one; sg-web,
/// not declared yet, admitting SSH from itself between its two members; and a second key, RAM user
/// bob's, that will open a path.
const ISOLATION_SEED: &str = "accessKeys:
  - {id: testid, secret: testsecret}
  - {id: bobid, secret: bobsecret, userName: bob}
securityGroups:
  - {id: sg-d, region: cn-hangzhou, innerAccessPolicy: Drop, vpcId: vpc-1, name: payments-db}
  - {id: sg-zz, region: cn-hangzhou, innerAccessPolicy: Accept, vpcId: vpc-1}
  - id: sg-web
    region: cn-hangzhou
    innerAccessPolicy: Accept
    vpcId: vpc-1
    permissions:
      - {SecurityGroupRuleId: sgr-webssh, Direction: ingress, IpProtocol: TCP, PortRange: 22/22, SourceGroupId: sg-web}
networkInterfaces:
  - {NetworkInterfaceId: eni-d1, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-1, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-d]}
  - {NetworkInterfaceId: eni-d2, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-2, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.2, SecurityGroupIds: [sg-d]}
  - {NetworkInterfaceId: eni-w1, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-4, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.4, SecurityGroupIds: [sg-web]}
  - {NetworkInterfaceId: eni-w2, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-5, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.5, SecurityGroupIds: [sg-web]}
  - {NetworkInterfaceId: eni-z1, region: cn-hangzhou, VpcId: vpc-1, InstanceId: i-3, Type: Primary, Status: InUse, PrivateIpAddress: 10.0.0.3, SecurityGroupIds: [sg-zz]}
";

/// Bob's signed call, as an SDK sends it (signature V1 over GET).
async fn bob_calls(url: &str, action: &str, business: &[(&str, &str)]) -> serde_json::Value {
    let nonce = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("AccessKeyId", "bobid"),
        ("Action", action),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", &nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", &now),
        ("Version", "2014-05-26"),
    ];
    params.extend_from_slice(business);
    let signature = crate::ecs::sign::sign("GET", params.iter().copied(), "bobsecret");
    let query = crate::ecs::sign::CanonicalQuery::new(params.iter().copied());
    let answer = reqwest::get(format!(
        "{url}/?{}&Signature={}",
        query.as_str(),
        crate::ecs::sign::encode(&signature)
    ))
    .await
    .expect("the simulator answers");
    assert!(
        answer.status().is_success(),
        "{action}: {}",
        answer.status()
    );
    answer.json().await.expect("JSON")
}

/// Bob adds `tcp 22/22` from `group` itself to `group`.
async fn bob_opens_ssh(url: &str, group: &str) {
    bob_calls(
        url,
        "AuthorizeSecurityGroup",
        &[
            ("RegionId", "cn-hangzhou"),
            ("SecurityGroupId", group),
            ("Permissions.1.IpProtocol", "TCP"),
            ("Permissions.1.PortRange", "22/22"),
            ("Permissions.1.SourceGroupId", group),
        ],
    )
    .await;
}

/// A daemon in-process that checks isolation, with the push receiver on and the simulator's
/// EventBridge pushing to it, its log captured.
struct Isolating {
    sim: Simulator,
    url: String,
    metrics_url: String,
    /// The status page's `/status.json`.
    status_url: String,
    folder: tempfile::TempDir,
    log: Captured,
    _log: tracing::subscriber::DefaultGuard,
    stop: tokio::sync::oneshot::Sender<()>,
}

type Stopped = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

async fn isolating(seed: &str, policy: &str) -> (Isolating, Setup, Shell<Stopped>) {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);

    let sim = Simulator::new(Seed::from_yaml(seed).expect("seed"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = sim.clone();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });

    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::write(folder.path().join("prod.yaml"), policy).expect("policy file");
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics = metrics_listener.local_addr().expect("addr");
    let events_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let events = events_listener.local_addr().expect("addr");
    let status_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let status = status_listener.local_addr().expect("addr");
    let target: sgpolicy_sim::PushTarget = serde_json::from_value(serde_json::json!({
        "url": format!("http://{events}/events"), "token": TOKEN,
    }))
    .expect("a push target");
    sim.set_eventbridge(sgpolicy_sim::EventBridgeConfig {
        targets: vec![target],
    })
    .expect("loopback target");
    let mut setup = setup(folder.path());
    setup.pass.check_isolation = true;
    setup.settings.events.receiver = Some(crate::events::ReceiverSettings {
        addr: events,
        token: Secret::new(TOKEN),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_hangup, hangups) = mpsc::channel(1);
    let shell = Shell {
        clients: clients(&url),
        credentials: None,
        listeners: Listeners {
            metrics: Some(metrics_listener),
            events: Some(events_listener),
            status: Some(status_listener),
        },
        shutdown: Box::pin(async {
            let _ = stopped.await;
        }) as Stopped,
        hangups,
    };
    let running = Isolating {
        sim,
        url,
        metrics_url: format!("http://{metrics}/metrics"),
        status_url: format!("http://{status}/status.json"),
        folder,
        log,
        _log: guard,
        stop,
    };
    (running, setup, shell)
}

impl Isolating {
    /// Waits until `/metrics` has the line `line`.
    async fn metric(&self, line: &str) {
        eventually(&format!("the metric {line}"), || async {
            let m = until_ok(&self.metrics_url).await;
            match m.lines().any(|l| l == line) {
                true => Ok(()),
                false => Err(m),
            }
        })
        .await
    }

    /// Waits until a warning containing every one of `parts` was logged; that line.
    async fn warning(&self, parts: &[&str]) -> String {
        eventually(&format!("a warning with {parts:?}"), || async {
            let text = self.log.text();
            text.lines()
                .find(|l| l.contains("WARN") && parts.iter().all(|p| l.contains(p)))
                .map(str::to_string)
                .ok_or(text)
        })
        .await
    }
}

#[tokio::test]
async fn a_file_edit_that_makes_a_leaky_group_drop_is_warned_about_by_the_file_pass() {
    let (d, mut setup, shell) = isolating(
        ISOLATION_SEED,
        "region: cn-hangzhou\ngroups:\n  - id: sg-d\n    innerAccessPolicy: Drop\n",
    )
    .await;
    let (got, hook) = webhook_receiver().await;
    setup.settings.notify = webhook_sink(&hook, Some(crate::notify::Kind::IsolationLost));
    let served = serve(setup, shell);
    let check = async {
        d.metric("sgpolicy_isolation_groups{status=\"isolated\"} 1")
            .await;
        // sg-web (undeclared, Accept) admits SSH from itself and has two members; the edit makes it
        // Drop, which the file pass writes and checks.
        std::fs::write(
            d.folder.path().join("prod.yaml"),
            "region: cn-hangzhou\ngroups:\n  - id: sg-d\n    innerAccessPolicy: Drop\n  - id: sg-web\n    innerAccessPolicy: Drop\n",
        )
        .expect("the edit");
        let warning = d
            .warning(&["group sg-web is not isolated: members of sg-web reach each other on tcp 22/22 through rule sgr-webssh of sg-web"])
            .await;
        assert!(
            warning.contains("changed_by=-"),
            "no event named anyone: {warning}"
        );
        d.metric("sgpolicy_isolation_groups{status=\"not-isolated\"} 1")
            .await;
        assert_eq!(
            d.sim.policy_of("cn-hangzhou", "sg-web"),
            Some(SimPolicy::Drop)
        );
        // The same transition reaches the notification sinks as one isolation-lost.
        let told = eventually("an isolation-lost notification", || async {
            let bodies = got.lock().expect("receiver").clone();
            bodies
                .iter()
                .flat_map(|b| b["notifications"].as_array().cloned().unwrap_or_default())
                .find(|n| n["kind"] == "isolation-lost")
                .ok_or(format!("{bodies:?}"))
        })
        .await;
        assert_eq!(told["group"]["id"], "sg-web");
        assert!(
            told["text"].as_str().is_some_and(|t| t.contains(
                "members of sg-web reach each other on tcp 22/22 through rule sgr-webssh"
            )),
            "{told}"
        );
        assert!(told["group"]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("prod.yaml:5:5")));
        d.stop.send(()).expect("serve is running");
    };
    tokio::join!(served, check);
}

#[tokio::test]
async fn a_path_opened_by_authorize_security_group_during_a_run_is_reported_with_its_author_by_a_targeted_check(
) {
    let (d, setup, shell) = isolating(
        ISOLATION_SEED,
        "region: cn-hangzhou\ngroups:\n  - id: sg-d\n    innerAccessPolicy: Drop\n",
    )
    .await;
    let (sim, url, log, stop) = (&d.sim, d.url.as_str(), &d.log, d.stop);
    let metrics_url = d.metrics_url.clone();
    let served = serve(setup, shell);
    let check = async {
        let metric = |text: &str, line: &str| text.lines().any(|l| l == line);
        eventually("sg-d checked isolated after the start-up pass", || async {
            let m = until_ok(&metrics_url).await;
            match metric(&m, "sgpolicy_isolation_groups{status=\"isolated\"} 1") {
                true => Ok(()),
                false => Err(m),
            }
        })
        .await;

        // A rule on a group none of sg-d's members is in costs nothing.
        let before = sim.calls().len();
        bob_opens_ssh(url, "sg-zz").await;
        eventually("the unrelated event counted", || async {
            let m = until_ok(&metrics_url).await;
            match m.contains("result=\"ignored_unrelated\"") {
                true => Ok(()),
                false => Err(m),
            }
        })
        .await;
        let after: Vec<_> = sim.calls().into_iter().skip(before).collect();
        assert_eq!(
            after.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
            ["AuthorizeSecurityGroup"],
            "bob's own call and not one read"
        );

        // Bob opens SSH between sg-d's members: the warning names him, the rule and the traffic.
        let before = sim.calls().len();
        bob_opens_ssh(url, "sg-d").await;
        let warning = eventually("the warning naming bob", || async {
            let text = log.text();
            text.lines()
                .find(|l| l.contains("WARN") && l.contains("ram-user bob added rule sgr-"))
                .map(str::to_string)
                .ok_or(text)
        })
        .await;
        assert!(
            warning.contains(
                "to sg-d: members of sg-d reach each other on tcp 22/22 through rule sgr-"
            ) && warning.contains("of sg-d (source: sg-d)"),
            "{warning}"
        );
        let m = until_ok(&metrics_url).await;
        assert!(
            metric(&m, "sgpolicy_isolation_groups{status=\"not-isolated\"} 1")
                && metric(&m, "sgpolicy_isolation_groups{status=\"isolated\"} 0"),
            "{m}"
        );
        // A targeted check: sg-d's rules and its VPC's interfaces, no group listing, no pass.
        let reads: Vec<(String, Option<String>)> = sim
            .calls()
            .into_iter()
            .skip(before)
            .filter(|c| c.access_key_id == "testid")
            .map(|c| (c.action, c.group_id))
            .collect();
        assert_eq!(
            reads,
            [
                (
                    "DescribeSecurityGroupAttribute".to_string(),
                    Some("sg-d".to_string())
                ),
                ("DescribeNetworkInterfaces".to_string(), None),
            ]
        );
        stop.send(()).expect("serve is running");
    };
    tokio::join!(served, check);
}

/// One generic webhook sink named `siem` posting to `hook` at once (no coalescing), for `only` one
/// kind when given.
fn webhook_sink(hook: &str, only: Option<crate::notify::Kind>) -> crate::notify::NotifySettings {
    let mut spec = crate::notify::SinkSpec::new(crate::notify::SinkKind::Webhook, "siem", hook);
    spec.coalesce = Duration::ZERO;
    spec.filter.kinds = only.map(|k| [k].into());
    crate::notify::NotifySettings {
        sinks: vec![crate::notify::SinkSettings { spec, secret: None }],
        tuning: Default::default(),
    }
}

/// A loopback webhook receiver: every body it got, answered 200.
async fn webhook_receiver() -> (Arc<std::sync::Mutex<Vec<serde_json::Value>>>, String) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let store = store.clone();
        async move {
            let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            store.lock().expect("receiver").push(v);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

#[tokio::test]
async fn a_correction_in_a_daemon_run_reaches_a_webhook_with_the_documented_body() {
    let (_sim, url) = simulator().await;
    let (got, hook) = webhook_receiver().await;
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::write(folder.path().join("prod.yaml"), FOLDER).expect("policy file");
    let policy_file = folder.path().join("prod.yaml");
    let mut setup = setup(folder.path());
    setup.settings.notify = webhook_sink(&hook, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_hangup, hangups) = mpsc::channel(1);
    let shell = Shell {
        clients: clients(&url),
        credentials: None,
        listeners: Listeners {
            metrics: Some(listener),
            ..Listeners::default()
        },
        shutdown: async {
            let _ = stopped.await;
        },
        hangups,
    };
    let check = async {
        let metrics = until(&format!("http://{addr}/metrics"), |m| {
            m.contains(r#"sgpolicy_notifications_total{sink="siem",result="sent"} 1"#)
        })
        .await;
        assert!(
            metrics.contains("sgpolicy_corrections_total 1"),
            "{metrics}"
        );
        let bodies = got.lock().expect("receiver").clone();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        let n = &bodies[0]["notifications"][0];
        assert_eq!(bodies[0]["version"], 1);
        assert_eq!(n["kind"], "corrected");
        assert_eq!(
            n["group"],
            serde_json::json!({"account": "", "region": "cn-hangzhou", "id": "sg-a",
                               "source": format!("{}:3:5", policy_file.display())}),
            "the group as the JSON report names it"
        );
        assert_eq!((&n["from"], &n["to"]), (&"Accept".into(), &"Drop".into()));
        assert_eq!(n["changedBy"], serde_json::Value::Null, "no event named it");
        assert!(n["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{n}");
        stop.send(()).expect("serve is running");
    };
    tokio::join!(serve(setup, shell), check);
}

/// Polls `url` until its 200 body satisfies `cond` (built on the one polling helper).
async fn until(url: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = until_ok(url).await;
        if cond(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{url} never satisfied: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_status_page_shows_a_corrected_group_with_its_last_correction_and_history() {
    let (_sim, url) = simulator().await;
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::write(folder.path().join("prod.yaml"), FOLDER).expect("policy file");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_hangup, hangups) = mpsc::channel(1);
    let shell = Shell {
        clients: clients(&url),
        credentials: None,
        listeners: Listeners {
            status: Some(listener),
            ..Listeners::default()
        },
        shutdown: async {
            let _ = stopped.await;
        },
        hangups,
    };
    let check = async {
        let body = until(&format!("http://{addr}/status.json"), |b| {
            b.contains(r#""state":"in-sync""#)
        })
        .await;
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["version"], 1);
        let g = &v["groups"][0];
        assert_eq!(
            (&g["id"], &g["declared"], &g["observed"]),
            (&"sg-a".into(), &"Drop".into(), &"Drop".into())
        );
        assert_eq!(g["lastCorrection"]["cause"], "resync", "{g}");
        assert_eq!(g["lastCorrection"]["changedBy"], serde_json::Value::Null);
        let history = until_ok(&format!(
            "http://{addr}/status/group.json?account=&region=cn-hangzhou&id=sg-a"
        ))
        .await;
        let h: serde_json::Value = serde_json::from_str(&history).expect("JSON");
        assert_eq!(h["history"][0]["what"], "corrected", "{h}");
        assert_eq!(h["history"][0]["detail"], "Accept → Drop");
        let page = reqwest::get(format!("http://{addr}/status"))
            .await
            .expect("page");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .expect("csp");
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'"),
            "{csp}"
        );
        let html = page.text().await.expect("html");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external asset"
        );
        stop.send(()).expect("serve is running");
    };
    tokio::join!(serve(setup(folder.path()), shell), check);
}

#[tokio::test]
async fn the_status_page_names_a_group_shows_its_isolation_as_the_report_does_and_who_opened_a_path(
) {
    let (d, setup, shell) = isolating(
        ISOLATION_SEED,
        "region: cn-hangzhou\ngroups:\n  - id: sg-d\n    innerAccessPolicy: Drop\n",
    )
    .await;
    let served = serve(setup, shell);
    let check = async {
        let isolation_of_sg_d = |want: &'static str| {
            let url = d.status_url.clone();
            async move {
                eventually(&format!("sg-d {want} on the status page"), || async {
                    let v: serde_json::Value =
                        serde_json::from_str(&until_ok(&url).await).expect("JSON");
                    match v["groups"][0]["isolation"]["status"] == want {
                        true => Ok(v),
                        false => Err(v.to_string()),
                    }
                })
                .await
            }
        };
        let v = isolation_of_sg_d("isolated").await;
        let g = &v["groups"][0];
        assert_eq!(
            (&g["id"], &g["name"]),
            (&"sg-d".into(), &"payments-db".into())
        );
        assert_eq!(
            g["isolation"],
            serde_json::json!({"status": "isolated", "members": 2, "paths": [], "unknown": []}),
            "the JSON report's object"
        );

        bob_opens_ssh(&d.url, "sg-d").await;
        let v = isolation_of_sg_d("not-isolated").await;
        assert_eq!(v["summary"]["notIsolated"], 1);
        let path = &v["groups"][0]["isolation"]["paths"][0];
        assert_eq!(
            (&path["protocol"], &path["ports"], &path["source"]),
            (&"tcp".into(), &"22/22".into(), &"sg-d".into()),
            "{path}"
        );
        let group_url = d.status_url.replace(
            "/status.json",
            "/status/group.json?account=&region=cn-hangzhou&id=sg-d",
        );
        let h: serde_json::Value = serde_json::from_str(&until_ok(&group_url).await).expect("JSON");
        let latest = &h["history"][0];
        assert_eq!(latest["what"], "isolation-lost", "{h}");
        assert_eq!(latest["changedBy"]["name"], "bob", "{latest}");
        assert!(
            latest["detail"]
                .as_str()
                .is_some_and(|t| t.contains("reach each other on tcp 22/22")),
            "{latest}"
        );
        d.stop.send(()).expect("serve is running");
    };
    tokio::join!(served, check);
}
