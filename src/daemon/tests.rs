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

/// Polls `url` until it answers 200 (the one polling helper of these tests).
async fn until_ok(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(url).await {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if status.is_success() {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{url} never answered 200: {body}"
            );
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let mut spec =
        crate::notify::SinkSpec::new(crate::notify::SinkKind::Webhook, "siem", hook.as_str());
    spec.coalesce = Duration::ZERO;
    setup.settings.notify = crate::notify::NotifySettings {
        sinks: vec![crate::notify::SinkSettings { spec, secret: None }],
        tuning: Default::default(),
    };
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
