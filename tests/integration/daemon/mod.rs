//! The daemon: the real binary as a long-lived process against the in-process simulator, with policy
//! folders changed the ways they change in production (editor rename, many files, git-sync link swap,
//! ConfigMap `..data` swap, folder removed and re-created), signals, metrics and readiness.
//! Every wait polls with a deadline ([`eventually`]); nothing depends on a sleep being long enough.

mod browser;
mod coverage;
mod events;
mod files;
mod hostile;
mod hostile_net;
mod notify;
mod ops;
mod shards;
mod status;

use crate::harness::*;
use sgpolicy_sim::Policy;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncBufReadExt;

const HZ: &str = "cn-hangzhou";

/// A running `sgpolicy` daemon whose stderr is collected line by line.
pub(crate) struct Daemon {
    child: tokio::process::Child,
    log: Arc<Mutex<Vec<String>>>,
    metrics_url: Option<String>,
}

impl Daemon {
    /// Starts `sgpolicy --policies DIR --metrics-addr 127.0.0.1:0 EXTRA...` and waits for the metrics
    /// address to be logged.
    async fn start(sim: &Sim, dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_with_env(sim, dir, extra, &[]).await
    }

    async fn start_with_env(sim: &Sim, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("--policies")
            .arg(dir)
            .args(["--metrics-addr", "127.0.0.1:0"])
            // No simulated quota here: lift the client's default 20 req/s so big folders start fast.
            .args(["--max-rps", "5000"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")
            .env("ALIBABA_CLOUD_ENDPOINT_ECS", &sim.url)
            // The LookupEvents poller (on by default in the daemon) asks the simulator, never a
            // real ActionTrail host: nothing in the tests may leave loopback.
            .env("ALIBABA_CLOUD_ENDPOINT_ACTIONTRAIL", &sim.url)
            // Tests must never reach for the real metadata service at 100.100.100.200.
            .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
            .env("RUST_LOG", "sgpolicy=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::spawn(cmd).await
    }

    /// Runs `cmd`, a daemon command line with `--metrics-addr 127.0.0.1:0`, collecting its stderr, and
    /// waits for the metrics address to be logged. Killed when dropped.
    pub(crate) async fn spawn(mut cmd: tokio::process::Command) -> Daemon {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn sgpolicy");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child,
            log,
            metrics_url: None,
        };
        let line = d.wait_log("serving /metrics").await;
        let url = line
            .split("http://")
            .nth(1)
            .map(|rest| {
                rest.split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap_or("")
            })
            .expect("metrics address in the log");
        d.metrics_url = Some(format!("http://{url}"));
        d
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// What a wait saw, `now`, with the daemon's log as it is when the wait gives up.
    fn saw(&self, now: impl Into<String>) -> Seen<'_> {
        Seen {
            now: now.into(),
            daemon: self,
        }
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits for a log line containing `needle`; returns it.
    async fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1).await
    }

    /// Waits until `n` log lines contain `needle`; returns the `n`th.
    async fn wait_log_count(&self, needle: &str, n: usize) -> String {
        let what = format!("{n} log line(s) with {needle:?}");
        eventually(&what, DEADLINE, || async {
            let found = self.lines_with(needle);
            found
                .get(n - 1)
                .cloned()
                .ok_or_else(|| self.saw(format!("{} such line(s)", found.len())))
        })
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let url = format!(
            "{}{path}",
            self.metrics_url.as_deref().expect("metrics enabled")
        );
        let r = reqwest::get(&url).await.expect("GET endpoint");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    async fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        Metrics::parse(&body)
    }

    /// Waits until `cond` holds for the scraped metrics; returns them.
    async fn wait_metrics(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        eventually(&format!("metrics showing {what}"), DEADLINE, || async {
            let m = self.metrics().await;
            if cond(&m) {
                Ok(m)
            } else {
                Err(self.saw(format!("last scrape:\n{}", m.text)))
            }
        })
        .await
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running");
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} {pid}");
    }

    async fn wait_exit(&mut self) -> i32 {
        match tokio::time::timeout(DEADLINE, self.child.wait()).await {
            Ok(status) => status.expect("wait").code().unwrap_or(-1),
            Err(_) => panic!("daemon did not exit; log:\n{}", self.log_text()),
        }
    }
}

/// What a daemon wait saw last: the observation, then the log read when this is shown.
struct Seen<'a> {
    now: String,
    daemon: &'a Daemon,
}

impl fmt::Display for Seen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\nlog:\n{}", self.now, self.daemon.log_text())
    }
}

/// A parsed OpenMetrics exposition: `name{labels}` → value.
struct Metrics {
    text: String,
    values: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut values = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            values.insert(
                series.to_string(),
                value.parse::<f64>().expect("numeric value"),
            );
        }
        Metrics {
            text: text.to_string(),
            values,
        }
    }

    /// A series' value, 0 when absent (counters that have not moved yet are not exported).
    fn get(&self, series: &str) -> f64 {
        self.values.get(series).copied().unwrap_or(0.0)
    }

    /// Sum over every series of `name` whose labels contain all of `labels`.
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.values
            .iter()
            .filter(|(k, _)| {
                k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

/// Writes `text` to `path` the way editors do: a temp file in the same folder renamed over the original.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x")
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits until the simulator's group `id` (in [`HZ`]) has the policy `want`.
pub(crate) async fn wait_policy(sim: &Sim, id: &str, want: Policy, d: &Daemon) {
    eventually(&format!("{id} to become {want}"), DEADLINE, || async {
        let now = sim.policy(HZ, id);
        if now == want {
            Ok(())
        } else {
            Err(d.saw(format!("{id} is {now}")))
        }
    })
    .await
}

fn writes_to(sim: &Sim, id: &str) -> usize {
    sim.writes()
        .iter()
        .filter(|c| c.group_id.as_deref() == Some(id))
        .count()
}

fn reads_of(sim: &Sim, id: &str) -> usize {
    sim.calls_of("DescribeSecurityGroupAttribute")
        .iter()
        .filter(|c| c.group_id.as_deref() == Some(id))
        .count()
}
