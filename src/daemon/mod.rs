//! The daemon: `sgpolicy --policies DIR` without `--once`. Wires the trigger loop ([`triggers`]) to
//! the pass runner ([`pass`]), the file watcher, signals, and the metrics/health endpoints.
//!
//! Start-up order matters: every piece of configuration (flags, credentials, endpoint) is validated
//! before any port is bound or any request is sent, and a problem exits 64. Signal handlers are
//! installed next, so a SIGTERM during start-up is honoured; then the metrics port is bound, the folder
//! watched, and the first (start-up) pass runs.

pub mod fights;
pub mod health;
pub mod metrics;
pub mod pass;
pub mod settings;
pub mod triggers;
pub mod watch;

pub use settings::DaemonSettings;

use crate::accounts::connect::ConnectSettings;
use crate::daemon::health::{Endpoints, Health};
use crate::daemon::metrics::Metrics;
use crate::daemon::watch::FolderWatch;
use crate::policy::LoadOptions;
use crate::reconcile::PassOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use triggers::{Exit, Input, Timing};

/// How often the loop proves it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// A pass running longer than this makes `/healthz` fail: `max(10 * interval, 1h)`.
fn stall_limit(interval: Duration) -> Duration {
    interval.saturating_mul(10).max(Duration::from_secs(3600))
}

/// Everything the daemon runs with, validated by the command-line layer.
#[derive(Clone, Debug)]
pub struct Setup {
    pub policies: PathBuf,
    pub load: LoadOptions,
    pub connect: ConnectSettings,
    /// The options of every pass; the daemon adds its cancellation flag.
    pub pass: PassOptions,
    pub settings: DaemonSettings,
}

/// How the daemon ended; the command-line layer turns it into an exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// SIGTERM or SIGINT, after the running pass finished (or the grace period ran out).
    Stopped,
    /// It could not start: credentials, endpoint or the metrics address (already printed).
    Misconfigured,
    /// It could not start for a reason that is not configuration (signal handlers, a port in use).
    Failed,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(setup: Setup) -> Ended {
    // The official credential chain; temporary credentials refresh in the background for as long
    // as the client lives. A daemon that cannot start is misconfigured: exit 64.
    let (clients, credentials) = match crate::accounts::connect::connect(&setup.connect).await {
        Ok((clients, credentials)) => (Arc::new(clients), credentials),
        Err(e) => {
            eprintln!("error: {e}");
            return Ended::Misconfigured;
        }
    };
    let settings = setup.settings.clone();

    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (mut sigterm, mut sigint, mut sighup) = match signals {
        (Ok(t), Ok(i), Ok(h)) => (t, i, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("error: installing signal handlers: {e}");
            return Ended::Failed;
        }
    };

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new(stall_limit(settings.interval)));
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match settings.metrics_addr {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let shown = listener
                    .local_addr()
                    .map_or(addr.to_string(), |a| a.to_string());
                tracing::info!("serving /metrics, /healthz and /readyz on http://{shown}");
                let endpoints = Endpoints {
                    health: health.clone(),
                    metrics: metrics.clone(),
                    clients: clients.clone(),
                    credentials: Some(credentials.clone()),
                };
                Some(tokio::spawn(crate::daemon::health::serve(
                    listener,
                    endpoints,
                    async {
                        let _ = http_stopped.await;
                    },
                )))
            }
            Err(e) => {
                eprintln!("error: cannot listen on --metrics-addr {addr}: {e}");
                return Ended::Failed;
            }
        },
    };

    let (tx, rx) = mpsc::channel::<Input>(64);
    let watch_tx = tx.clone();
    let watch = match FolderWatch::new(&setup.policies, move || {
        // A full channel already holds a "changed": nothing is lost by dropping this one.
        let _ = watch_tx.try_send(Input::Changed);
    }) {
        Ok(w) => {
            if !w.watching_folder() {
                tracing::warn!(
                    "policy folder {} does not exist yet; waiting for it to appear",
                    setup.policies.display()
                );
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; changes are picked up by the --interval resync only",
                setup.policies.display()
            );
            None
        }
    };
    tokio::spawn(async move {
        while sighup.recv().await.is_some() {
            tracing::info!("SIGHUP: running a full pass");
            if tx.send(Input::Hangup).await.is_err() {
                break;
            }
        }
    });

    tracing::info!(
        policies = %setup.policies.display(),
        interval = %humantime::format_duration(settings.interval),
        dry_run = setup.pass.dry_run,
        "sgpolicy daemon starting"
    );
    let timing = Timing {
        interval: settings.interval,
        debounce: settings.debounce,
        retry: settings.retry,
        grace: settings.shutdown_grace,
        heartbeat: HEARTBEAT,
    };
    let grace = settings.shutdown_grace;
    let runner = Arc::new(pass::Runner::new(setup, clients, metrics, health, watch));
    let shutdown = async move {
        let name = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        tracing::info!(
            "{name}: shutting down; a running pass finishes its in-flight writes (up to {})",
            humantime::format_duration(grace)
        );
    };
    let exit = tokio::task::LocalSet::new()
        .run_until(triggers::run(runner, timing, rx, shutdown))
        .await;
    match exit {
        Exit::Stopped => tracing::info!("stopped"),
        Exit::GraceExceeded => tracing::warn!(
            "the running pass did not finish within the grace period and was abandoned; its writes \
             carry ClientTokens, so the next run's retry of them is safe"
        ),
    }
    let _ = stop_http.send(());
    if let Some(server) = server {
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    }
    Ended::Stopped
}
