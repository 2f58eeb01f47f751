//! The daemon: `sgpolicy --policies DIR` without `--once`. Wires the trigger loop ([`triggers`]) to
//! the pass runner ([`pass`]), the file watcher, signals, and the metrics/health endpoints.
//!
//! Start-up order matters: every piece of configuration (flags, credentials, endpoint) is validated
//! before any port is bound or any request is sent, and a problem exits 64. Signal handlers are
//! installed next, so a SIGTERM during start-up is honoured; then the metrics port is bound, the folder
//! watched, and the first (start-up) pass runs.

pub mod fights;
pub mod health;
pub mod intake;
pub mod listen;
pub mod metrics;
pub mod pass;
pub mod reach;
pub mod settings;
pub mod shard;
pub mod status;
pub mod sweep;
pub mod triggers;
pub mod watch;

#[cfg(test)]
mod tests;

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
    /// `--report FILE`: the JSON report of the last pass that looked at any group.
    pub report: Option<PathBuf>,
    /// The (account, region) buckets this replica owns: passes, selector listings and (issue 11)
    /// event pollers cover only these; `shard.owns(&bucket)` says whether a bucket is one of them.
    pub shard: crate::shard::Shard,
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

/// Runs the daemon until SIGTERM/SIGINT. The steps, in the order the module doc explains: connect
/// (credentials, endpoint), install the signal handlers, bind the ports, then [`serve`].
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
    let Some(signals) = Signals::install() else {
        return Ended::Failed;
    };
    let listeners = match Listeners::bind(&setup.settings).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ended::Failed;
        }
    };
    let Signals {
        mut terminate,
        mut interrupt,
        mut hangup,
    } = signals;
    let grace = setup.settings.shutdown_grace;
    let shutdown = async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(
            "{name}: shutting down; a running pass finishes its in-flight writes (up to {})",
            humantime::format_duration(grace)
        );
    };
    let (hangups_tx, hangups) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: running a full pass");
            if hangups_tx.send(()).await.is_err() {
                break;
            }
        }
    });
    let shell = Shell {
        clients,
        credentials: Some(credentials),
        listeners,
        shutdown,
        hangups,
    };
    serve(setup, shell).await;
    Ended::Stopped
}

/// The sockets the daemon serves, bound by its caller ([`run`] binds the flags' addresses; a test
/// binds port 0 and knows the port without reading a log).
#[derive(Default)]
pub struct Listeners {
    /// `/metrics`, `/healthz` and `/readyz` (`--metrics-addr`).
    pub metrics: Option<tokio::net::TcpListener>,
    /// `POST /events` for EventBridge (`--events-addr`).
    pub events: Option<tokio::net::TcpListener>,
    /// `/status` and `/status.json` (`--status-addr`).
    pub status: Option<tokio::net::TcpListener>,
}

/// A port the daemon was told to listen on and cannot.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {flag} {addr}: {source}")]
pub struct BindError {
    flag: &'static str,
    addr: std::net::SocketAddr,
    source: std::io::Error,
}

impl Listeners {
    /// Binds `--metrics-addr`, `--events-addr` and `--status-addr`, when given.
    pub async fn bind(settings: &DaemonSettings) -> Result<Listeners, BindError> {
        async fn bind_one(
            addr: Option<std::net::SocketAddr>,
            flag: &'static str,
        ) -> Result<Option<tokio::net::TcpListener>, BindError> {
            let Some(addr) = addr else {
                return Ok(None);
            };
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => Ok(Some(l)),
                Err(source) => Err(BindError { flag, addr, source }),
            }
        }
        Ok(Listeners {
            metrics: bind_one(settings.metrics_addr, "--metrics-addr").await?,
            events: bind_one(
                settings.events.receiver.as_ref().map(|r| r.addr),
                "--events-addr",
            )
            .await?,
            status: bind_one(settings.status_addr, "--status-addr").await?,
        })
    }
}

/// What the daemon's caller provides: the clients, the bound sockets, and the signals it chose.
pub struct Shell<S> {
    pub clients: Arc<crate::accounts::Clients>,
    /// The credential chain's refresher, for its metrics (none in tests with fixed keys).
    pub credentials: Option<crate::credentials::chain::Resolved>,
    pub listeners: Listeners,
    /// Completes when the daemon should stop (SIGTERM or SIGINT in [`run`]).
    pub shutdown: S,
    /// One item per request for a full pass now (SIGHUP in [`run`]).
    pub hangups: mpsc::Receiver<()>,
}

/// Serves the daemon on sockets its caller bound until `shell.shutdown` completes: the endpoints,
/// the event sources, the folder watch, the trigger loop and the targeted lane.
pub async fn serve<S: std::future::Future<Output = ()>>(setup: Setup, shell: Shell<S>) {
    let Shell {
        clients,
        credentials,
        listeners,
        shutdown,
        hangups,
    } = shell;
    let settings = setup.settings.clone();
    let metrics = Arc::new(Metrics::new());
    metrics.shard.set_shard(setup.shard);
    let health = Arc::new(Health::new(stall_limit(settings.interval)));
    let endpoints = Endpoints {
        health: health.clone(),
        metrics: metrics.clone(),
        clients: clients.clone(),
        credentials,
    };
    let server = Server::start(
        listeners.metrics,
        "/metrics, /healthz and /readyz",
        crate::daemon::health::router(endpoints),
    );

    let events = EventSources::start(
        &settings.events,
        &setup.shard,
        &clients,
        &health,
        listeners.events,
    );
    let intake = events.intake.clone();
    let targets_tx = events.targets.clone();
    let (tx, rx) = mpsc::channel::<Input>(64);
    let watch = watch_folder(&setup.policies, tx.clone());
    let mut hangups = hangups;
    let hangup_task = tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            if tx.send(Input::Hangup).await.is_err() {
                break;
            }
        }
    });

    tracing::info!(
        policies = %setup.policies.display(),
        interval = %humantime::format_duration(settings.interval),
        dry_run = setup.pass.dry_run,
        shard = %setup.shard,
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
    let notifier = start_notifier(&settings, &metrics);
    let board = Arc::new(status::Board::default());
    let status_page = Server::start_within(
        listeners.status,
        "the status page /status and /status.json",
        status::page::router(board.clone(), settings.status_auth.clone()),
        listen::Limits::STATUS,
    );
    let runner = Arc::new(
        pass::Runner::new(setup, clients, metrics, health, watch, intake, targets_tx)
            .notifying(notifier)
            .showing(board),
    );
    run_lanes(runner, timing, rx, shutdown, grace).await;
    hangup_task.abort();
    events.stop().await;
    status_page.stop().await;
    server.stop().await;
}

/// The notifier of `--notify-config` (its sinks' tasks run until the daemon's runtime ends). A sink
/// that cannot start (its HTTP client) is said once; the daemon carries on without notifications
/// rather than stop enforcing.
fn start_notifier(settings: &DaemonSettings, metrics: &Metrics) -> crate::notify::Notifier {
    if settings.notify.sinks.is_empty() {
        return crate::notify::Notifier::default();
    }
    match crate::notify::Notifier::start(settings.notify.clone(), metrics.notify.clone()) {
        Ok(n) => {
            tracing::info!(sinks = settings.notify.sinks.len(), "notifications on");
            n
        }
        Err(e) => {
            tracing::error!("notifications are off: {e:#}");
            crate::notify::Notifier::default()
        }
    }
}

/// The main lane (the trigger loop) and the targeted lane, until `shutdown` and the grace period.
async fn run_lanes(
    runner: Arc<pass::Runner>,
    timing: Timing,
    inputs: mpsc::Receiver<Input>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let exit = tokio::task::LocalSet::new()
        .run_until(async move {
            let lane = tokio::task::spawn_local(runner.clone().targeted_lane());
            let sweep = tokio::task::spawn_local(runner.clone().sweep_lane());
            let exit = triggers::run(runner, timing, inputs, shutdown).await;
            // Shutdown set the cancel flag: a targeted pass stops starting work; give its in-flight
            // writes the grace period like the main lane's.
            let _ = tokio::time::timeout(grace, async {
                let _ = lane.await;
                let _ = sweep.await;
            })
            .await;
            exit
        })
        .await;
    match exit {
        Exit::Stopped => tracing::info!("stopped"),
        Exit::GraceExceeded => tracing::warn!(
            "the running pass did not finish within the grace period and was abandoned; its writes \
             carry ClientTokens, so the next run's retry of them is safe"
        ),
    }
}

/// ActionTrail events: the poller and the push receiver hand what they hear to the intake, which
/// queues groups for the targeted lane.
struct EventSources {
    intake: Arc<intake::Intake>,
    /// What the poller covers, published by the main lane after every pass.
    targets: tokio::sync::watch::Sender<Arc<crate::events::poller::Targets>>,
    receiver: Server,
    poller: Option<tokio::task::JoinHandle<()>>,
    hearing: tokio::task::JoinHandle<()>,
}

impl EventSources {
    fn start(
        events: &crate::events::EventSettings,
        shard: &crate::shard::Shard,
        clients: &Arc<crate::accounts::Clients>,
        health: &Health,
        listener: Option<tokio::net::TcpListener>,
    ) -> EventSources {
        let status = Arc::new(crate::events::Status::new());
        if events.poll.is_some() {
            status.turn_on(crate::events::Via::Pull);
        }
        if events.receiver.is_some() {
            status.turn_on(crate::events::Via::Push);
        }
        health.events(status.clone());
        let intake = Arc::new(intake::Intake::new(status.clone(), *shard));
        let (heard_tx, mut heard_rx) = mpsc::channel::<crate::events::Heard>(4096);
        let receiver = match &events.receiver {
            Some(r) => Server::start(
                listener,
                "POST /events (EventBridge)",
                crate::events::receiver::router(r.token.clone(), intake.clone(), status.clone()),
            ),
            None => Server { task: None },
        };
        let (targets, targets_rx) =
            tokio::sync::watch::channel(Arc::new(crate::events::poller::Targets::default()));
        let poller = events.poll.map(|every| {
            tokio::spawn(crate::events::poller::run(
                clients.clone(),
                targets_rx,
                every,
                events.lookback,
                heard_tx.clone(),
                status.clone(),
            ))
        });
        drop(heard_tx);
        let hearer = intake.clone();
        let hearing = tokio::spawn(async move {
            while let Some(heard) = heard_rx.recv().await {
                let (id, via) = (heard.change.author.event_id.clone(), heard.via);
                let admission = hearer.hear(heard);
                tracing::debug!(event_id = %id, via = via.label(), result = admission.label(), "event");
            }
        });
        EventSources {
            intake,
            targets,
            receiver,
            poller,
            hearing,
        }
    }

    async fn stop(self) {
        if let Some(p) = self.poller {
            p.abort();
        }
        self.hearing.abort();
        self.receiver.stop().await;
    }
}

/// SIGTERM, SIGINT and SIGHUP, installed before any port is bound so a SIGTERM during start-up is
/// honoured.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// `None` (after saying why on stderr) when a handler cannot be installed.
    fn install() -> Option<Signals> {
        let installed = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        );
        match installed {
            (Ok(terminate), Ok(interrupt), Ok(hangup)) => Some(Signals {
                terminate,
                interrupt,
                hangup,
            }),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                eprintln!("error: installing signal handlers: {e}");
                None
            }
        }
    }
}

/// An HTTP endpoint of the daemon (`/metrics` and health, `POST /events`), when its flag asks for one.
struct Server {
    task: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

impl Server {
    /// Serves `router` on `listener` (the one place a listener is served), when there is one.
    fn start(
        listener: Option<tokio::net::TcpListener>,
        what: &str,
        router: axum::Router,
    ) -> Server {
        Server::start_within(listener, what, router, listen::Limits::DEFAULT)
    }

    /// [`Server::start`] within other `limits` (the status page's smaller connection cap).
    fn start_within(
        listener: Option<tokio::net::TcpListener>,
        what: &str,
        router: axum::Router,
        limits: listen::Limits,
    ) -> Server {
        let Some(listener) = listener else {
            return Server { task: None };
        };
        let shown = listener
            .local_addr()
            .map_or_else(|e| format!("(unknown address: {e})"), |a| a.to_string());
        tracing::info!("serving {what} on http://{shown}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Bounded: header and body timeouts, a connection cap that sheds idle connections first.
        let task = tokio::spawn(listen::serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        Server {
            task: Some((task, stop)),
        }
    }

    /// Stops serving, waiting up to two seconds for open requests.
    async fn stop(self) {
        if let Some((task, stop)) = self.task {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }
}

/// Watches the policy folder, sending `Changed` on every event; `None` when it cannot be watched (the
/// `--interval` resync still picks changes up).
fn watch_folder(policies: &std::path::Path, tx: mpsc::Sender<Input>) -> Option<FolderWatch> {
    let watch = FolderWatch::new(policies, move || {
        // A full channel already holds a "changed": nothing is lost by dropping this one.
        let _ = tx.try_send(Input::Changed);
    });
    match watch {
        Ok(w) => {
            if !w.watching_folder() {
                tracing::warn!(
                    "policy folder {} does not exist yet; waiting for it to appear",
                    policies.display()
                );
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; changes are picked up by the --interval resync only",
                policies.display()
            );
            None
        }
    }
}
