//! Liveness and readiness of the daemon, and the HTTP endpoints that expose them with the metrics:
//! `/metrics`, `/healthz`, `/readyz`.
//!
//! - `/healthz` is 200 while the reconcile loop is alive: its heartbeat (ticked by the loop itself every
//!   second) is recent and no pass has been running for longer than the stall limit. An HTTP server that
//!   answers while the loop is dead would otherwise look healthy.
//! - `/readyz` is 200 once a full pass has run with a policy folder in force and the last pass that
//!   talked to the cloud had no cloud failure (credentials rejected, outage, throttling after retries).
//!   A policy folder that breaks *after* a good one loaded keeps the daemon ready but **degraded**: the
//!   last good state is still enforced, the body says `degraded`, and `sgpolicy_policy_load_errors` is
//!   above zero (alert on that). It is 503 while shutting down.

use crate::daemon::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The heartbeat is older than this: the loop is stuck.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// Why the daemon's last pass that talked to the cloud failed on it: kept typed up to `/readyz`,
/// which is the only place it becomes text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloudTrouble {
    /// A request failed in a way that is the cloud's (or the way to it), not one group's: the
    /// pass's fatal error, a group's write or read failure of that class, a selector listing.
    #[error(transparent)]
    Failed(crate::reconcile::Failure),
    /// A group's read failed with the cloud to blame.
    #[error("{code}: {message}")]
    Unreadable { code: String, message: String },
    /// The pass panicked (a bug): the daemon retries with backoff.
    #[error("the last pass panicked: {0}")]
    Panicked(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FolderStatus {
    /// No policy folder has loaded cleanly yet (missing, or has errors).
    #[default]
    NotLoaded,
    Loaded {
        revision: String,
    },
    /// A newer version of the folder has errors; `revision` is still enforced.
    Degraded {
        revision: String,
        errors: usize,
    },
}

#[derive(Debug, Default)]
struct Readiness {
    full_pass_done: bool,
    folder: FolderStatus,
    folder_errors: usize,
    /// The first of the folder's problems, said in `/readyz` (a link out of the folder, a limit).
    folder_problem: Option<String>,
    /// Why the last pass that talked to the cloud failed on it.
    cloud: Option<CloudTrouble>,
    stopping: bool,
}

pub struct Health {
    started: Instant,
    /// Milliseconds since `started` (+1, so 0 means "never").
    heartbeat: AtomicU64,
    /// When the running pass started, same encoding; 0 when idle.
    pass_started: AtomicU64,
    stall_after: Duration,
    state: Mutex<Readiness>,
    /// The event sources, whose trouble degrades readiness but never fails it: the resync goes on.
    events: std::sync::OnceLock<Arc<crate::events::Status>>,
}

impl Health {
    /// `stall_after`: a pass running longer than this makes the daemon unhealthy.
    pub fn new(stall_after: Duration) -> Health {
        let h = Health {
            started: Instant::now(),
            heartbeat: AtomicU64::new(0),
            pass_started: AtomicU64::new(0),
            stall_after,
            state: Mutex::new(Readiness::default()),
            events: std::sync::OnceLock::new(),
        };
        h.beat();
        h
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    fn with<T>(&self, f: impl FnOnce(&mut Readiness) -> T) -> T {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    pub fn beat(&self) {
        self.heartbeat.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn pass_started(&self) {
        self.pass_started.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn pass_ended(&self) {
        self.pass_started.store(0, Ordering::Relaxed);
    }

    pub fn folder(&self, status: FolderStatus, errors: usize) {
        self.with(|r| {
            r.folder = status;
            r.folder_errors = errors;
        });
    }

    /// The first problem of a folder that did not load (`None` once one loads), for `/readyz`.
    pub fn folder_problem(&self, first: Option<String>) {
        self.with(|r| r.folder_problem = first);
    }

    /// After a pass that talked to the cloud: `None` when it had no cloud failure.
    pub fn cloud(&self, failure: Option<CloudTrouble>) {
        self.with(|r| r.cloud = failure);
    }

    pub fn events(&self, status: Arc<crate::events::Status>) {
        let _ = self.events.set(status);
    }

    pub fn full_pass_done(&self) {
        self.with(|r| r.full_pass_done = true);
    }

    pub fn stopping(&self) {
        self.with(|r| r.stopping = true);
    }

    pub fn healthy(&self) -> (bool, String) {
        let now = self.now_ms();
        let age = Duration::from_millis(now.saturating_sub(self.heartbeat.load(Ordering::Relaxed)));
        if age > HEARTBEAT_STALE {
            return (
                false,
                format!("reconcile loop heartbeat is {}s old", age.as_secs()),
            );
        }
        let started = self.pass_started.load(Ordering::Relaxed);
        if started != 0 {
            let running = Duration::from_millis(now.saturating_sub(started));
            if running > self.stall_after {
                return (
                    false,
                    format!("a pass has been running for {}s", running.as_secs()),
                );
            }
        }
        (true, "ok".to_string())
    }

    pub fn ready(&self) -> (bool, String) {
        let events = self.events.get().and_then(|e| e.unavailable());
        self.with(|r| {
            if r.stopping {
                return (false, "shutting down".to_string());
            }
            // The problem is escaped: a file name or a link target is untrusted text.
            let first = r.folder_problem.as_deref().map_or(String::new(), |p| {
                format!(", the first: {}", crate::escape::text(p))
            });
            let folder_note = match &r.folder {
                FolderStatus::NotLoaded if r.folder_errors > 0 => {
                    return (false, format!("policy folder has {} error(s){first} and no earlier version loaded", r.folder_errors));
                }
                FolderStatus::NotLoaded => return (false, "policy folder not loaded yet".to_string()),
                FolderStatus::Loaded { revision } => format!("revision {revision}"),
                FolderStatus::Degraded { revision, errors } => format!(
                    "degraded: policy folder has {errors} error(s){first}; enforcing last good revision {revision}"
                ),
            };
            if !r.full_pass_done {
                return (false, "first full pass not finished".to_string());
            }
            if let Some(why) = &r.cloud {
                return (false, format!("cloud: {why}"));
            }
            if let Some(why) = events {
                return (
                    true,
                    format!("ready ({folder_note}); degraded: events unavailable: {why}"),
                );
            }
            (true, format!("ready ({folder_note})"))
        })
    }
}

#[derive(Clone)]
pub struct Endpoints {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub clients: Arc<crate::accounts::Clients>,
    /// The credential chain's choice, for the refresh-health gauges.
    pub credentials: Option<crate::credentials::chain::Resolved>,
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}

async fn metrics(State(e): State<Endpoints>) -> Response {
    e.metrics.sync_api_calls(e.clients.stats());
    e.metrics.ready.set(i64::from(e.health.ready().0));
    if let Some(status) = e.credentials.as_ref().and_then(|c| c.status()) {
        e.metrics.set_credentials(&status);
    }
    for status in e.clients.session_statuses().await {
        e.metrics.set_credentials(&status);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        e.metrics.encode(),
    )
        .into_response()
}

/// 200 with the reason when `ok`, else 503 with it: what probes and humans both read.
fn verdict((ok, why): (bool, String)) -> Response {
    let status = match ok {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(status, why)
}

async fn healthz(State(e): State<Endpoints>) -> Response {
    verdict(e.health.healthy())
}

async fn readyz(State(e): State<Endpoints>) -> Response {
    verdict(e.health.ready())
}

pub fn router(e: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(e)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    e: Endpoints,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(e))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_a_folder_a_full_pass_and_a_working_cloud() {
        let h = Health::new(Duration::from_secs(3600));
        assert!(!h.ready().0);
        h.folder(FolderStatus::NotLoaded, 2);
        assert!(h.ready().1.contains("2 error(s)"));
        h.folder(
            FolderStatus::Loaded {
                revision: "r1".into(),
            },
            0,
        );
        assert_eq!(
            h.ready(),
            (false, "first full pass not finished".to_string())
        );
        h.full_pass_done();
        assert_eq!(h.ready(), (true, "ready (revision r1)".to_string()));
        h.cloud(Some(CloudTrouble::Unreadable {
            code: "SignatureDoesNotMatch".into(),
            message: "the signature is wrong".into(),
        }));
        assert_eq!(
            h.ready(),
            (
                false,
                "cloud: SignatureDoesNotMatch: the signature is wrong".to_string()
            )
        );
        h.cloud(None);
        h.folder(
            FolderStatus::Degraded {
                revision: "r1".into(),
                errors: 1,
            },
            1,
        );
        h.folder_problem(Some("p/r:1:1: symlink to \"/\"\n::forged".into()));
        let (ok, why) = h.ready();
        assert_eq!(
            (ok, why.as_str()),
            (true, "ready (degraded: policy folder has 1 error(s), the first: p/r:1:1: symlink to \"/\"\\n::forged; enforcing last good revision r1)")
        );
        h.stopping();
        assert!(!h.ready().0);
    }

    #[test]
    fn a_pass_running_past_the_stall_limit_is_unhealthy() {
        let h = Health::new(Duration::from_millis(0));
        assert!(h.healthy().0);
        h.pass_started();
        std::thread::sleep(Duration::from_millis(5));
        let (ok, why) = h.healthy();
        assert!(!ok && why.contains("running"), "{why}");
        h.pass_ended();
        assert!(h.healthy().0);
    }
}
