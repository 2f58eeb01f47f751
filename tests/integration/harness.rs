//! Test fixtures: a simulator on 127.0.0.1:0, policy folders on disk, the binary run as a user would,
//! and [`eventually`], the one way a test waits for something. The fixtures' contents are built with
//! [`Seed`] and [`PolicyFile`] (`builders.rs`).
//!
//! What the simulated cloud holds is read and set in the simulator's own vocabulary
//! (`sgpolicy_sim::Policy`), not the agent's: the two crates share no types.

#![allow(dead_code)]

pub use crate::builders::*;
use serde_json::Value;
use sgpolicy_sim::Policy;
use sgpolicy_sim::{CallRecord, Simulator};
use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sgpolicy");

/// A running simulator; dropped with the test's runtime.
pub struct Sim {
    pub sim: Simulator,
    pub url: String,
}

impl Sim {
    /// A simulator holding `seed`, which goes through the seed YAML as `sgpolicy sim --seed` does.
    pub async fn start(seed: &Seed) -> Sim {
        Sim::start_yaml(&seed.yaml()).await
    }

    /// A simulator holding the state this seed YAML describes.
    pub async fn start_yaml(seed_yaml: &str) -> Sim {
        let seed = sgpolicy_sim::Seed::from_yaml(seed_yaml).expect("seed parses");
        let sim = Simulator::new(seed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = sim.clone();
        tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
        Sim { sim, url }
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.sim.calls()
    }

    pub fn calls_of(&self, action: &str) -> Vec<CallRecord> {
        self.calls()
            .into_iter()
            .filter(|c| c.action == action)
            .collect()
    }

    pub fn writes(&self) -> Vec<CallRecord> {
        self.calls_of("ModifySecurityGroupPolicy")
    }

    pub fn effective_writes(&self) -> Vec<CallRecord> {
        self.writes().into_iter().filter(|c| c.effective).collect()
    }

    pub fn policy(&self, region: &str, id: &str) -> Policy {
        self.sim.policy_of(region, id).expect("group exists")
    }

    pub async fn faults(&self, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sim/faults", self.url))
            .json(&body)
            .send()
            .await
            .expect("faults request");
        assert!(r.status().is_success(), "faults rejected: {}", r.status());
    }
}

/// A policy folder in a temporary directory.
pub struct Folder {
    pub dir: tempfile::TempDir,
}

impl Folder {
    pub fn new() -> Folder {
        Folder {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn with(files: &[(&str, &str)]) -> Folder {
        let f = Folder::new();
        for (name, text) in files {
            f.write(name, text);
        }
        f
    }

    /// The folder with one more file, `name` (which may contain subfolders) holding `text`.
    pub fn file(self, name: &str, text: impl AsRef<str>) -> Folder {
        self.write(name, text.as_ref());
        self
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write policy file");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The JSON entry for one group.
    pub fn group(&self, id: &str) -> Value {
        self.json()["groups"]
            .as_array()
            .expect("groups array")
            .iter()
            .find(|g| g["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no group {id} in output:\n{}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs the binary with the simulator's endpoint and the test key, plus `env` overrides
/// (`("NAME", None)` removes a variable).
pub async fn run(sim: &Sim, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")
        .env("ALIBABA_CLOUD_ENDPOINT_ECS", &sim.url)
        // The LookupEvents poller (on by default in the daemon) asks the simulator, never a
        // real ActionTrail host: nothing in the tests may leave loopback.
        .env("ALIBABA_CLOUD_ENDPOINT_ACTIONTRAIL", &sim.url)
        .env("RUST_LOG", "sgpolicy=debug")
        // Tests never reach for the real instance metadata service at 100.100.100.200.
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().await.expect("run sgpolicy").into()
}

/// `--policies DIR --once [extra...] --output json`.
pub async fn once(sim: &Sim, folder: &Folder, extra: &[&str]) -> Run {
    let dir: PathBuf = folder.path().to_path_buf();
    let dir = dir.to_str().expect("utf-8 temp path").to_string();
    let mut args = vec!["--policies", dir.as_str(), "--once", "--output", "json"];
    args.extend_from_slice(extra);
    run(sim, &args, &[]).await
}

/// How long [`eventually`] waits before giving up. Generous: the tests run on loaded 2-core machines,
/// and no test asserts on how long anything took.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often [`eventually`] looks.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Waits until `condition` holds and returns what it found: the condition is polled every 20 ms and
/// answers `Ok(found)` once it holds, or `Err(seen)`, what it saw instead. When `deadline` passes
/// first, the test panics naming `what` it waited for and showing the last `seen` (displayed only
/// then, so it may be costly to show, like a whole log).
///
/// ```text
/// eventually("sg-a to become Drop", DEADLINE, || async {
///     let now = sim.policy(HZ, "sg-a");
///     if now == Policy::Drop { Ok(()) } else { Err(format!("sg-a is {now}")) }
/// })
/// .await;
/// ```
pub async fn eventually<T, Seen, Fut>(
    what: &str,
    deadline: Duration,
    mut condition: impl FnMut() -> Fut,
) -> T
where
    Fut: Future<Output = Result<T, Seen>>,
    Seen: Display,
{
    let start = tokio::time::Instant::now();
    let mut looks = 0u32;
    loop {
        looks += 1;
        match condition().await {
            Ok(found) => return found,
            Err(seen) if start.elapsed() >= deadline => {
                panic!("gave up waiting for {what} after {deadline:?} ({looks} looks); last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

// `eventually` runs in-process, so its own tests run on paused time: the 30-second deadline passes
// without a real wait.

#[tokio::test(start_paused = true)]
async fn eventually_returns_what_the_condition_found_once_it_holds() {
    let mut looks = 0;
    let found = eventually("the third look", DEADLINE, || {
        looks += 1;
        let n = looks;
        async move {
            if n == 3 {
                Ok("found")
            } else {
                Err(n)
            }
        }
    })
    .await;
    assert_eq!((found, looks), ("found", 3));
}

#[tokio::test(start_paused = true)]
async fn eventually_gives_up_at_the_deadline_naming_what_it_waited_for_and_what_it_saw() {
    let wait = tokio::spawn(eventually("sg-a to become Drop", DEADLINE, || async {
        Err::<(), _>("sg-a is Accept")
    }));
    let panic = wait.await.expect_err("gave up").into_panic();
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(
        message.starts_with("gave up waiting for sg-a to become Drop after 30s (")
            && message.ends_with("looks); last seen: sg-a is Accept"),
        "{message}"
    );
}
