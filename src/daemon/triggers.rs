//! The trigger loop: turns file events, the resync timer, SIGHUP and shutdown into reconcile passes,
//! one at a time.
//!
//! - A burst of file events is debounced: a pass starts once no event arrived for the debounce window,
//!   or at the latest [`DEBOUNCE_MAX_FACTOR`] windows after the first event of the burst (so a folder
//!   that never stops changing cannot starve the loop).
//! - A pass is never run twice in parallel. Triggers arriving during a pass are merged into exactly one
//!   pending pass; a full trigger (start-up, interval, SIGHUP, retry) wins over a file trigger.
//! - The resync timer restarts when a full pass ends. After a pass that failed on the cloud, the next
//!   automatic pass is a retry after an exponential backoff instead ([`RetryPolicy`]).
//! - Each pass runs on its own task: a panic is caught through its `JoinHandle`, reported, and treated
//!   as a failed pass (the next attempt backs off), so the daemon never dies silently. Pass tasks are
//!   local tasks (`spawn_local`: the reconcile pass's future is not `Send`), so [`run`] must be
//!   called inside a `tokio::task::LocalSet`.
//! - Shutdown stops taking triggers, lets the running pass finish (it stops starting new work itself),
//!   and aborts it when the grace period ends.

use super::settings::RetryPolicy;
use futures::future::LocalBoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A continuous stream of file events still starts a pass after this many debounce windows.
pub const DEBOUNCE_MAX_FACTOR: u32 = 5;

/// Why a pass runs. Every pass is level-triggered; the trigger only decides its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    Startup,
    File,
    Interval,
    Signal,
    Retry,
    /// An ActionTrail event: a targeted pass of the targeted lane (never scheduled by this loop).
    Event,
    /// The continuous verification: a few groups read longest ago (the sweep lane, never
    /// scheduled by this loop).
    Sweep,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::File => "file",
            Trigger::Interval => "interval",
            Trigger::Signal => "signal",
            Trigger::Retry => "retry",
            Trigger::Event => "event",
            Trigger::Sweep => "sweep",
        }
    }

    /// A full pass re-reads every declared group (but the interval pass beside the sweep, which
    /// lists selectors and reads none); a file pass only those whose declaration changed.
    pub fn is_full(self) -> bool {
        !matches!(self, Trigger::File | Trigger::Event | Trigger::Sweep)
    }

    fn merge(pending: Option<Trigger>, new: Trigger) -> Trigger {
        match pending {
            Some(p) if p.is_full() || !new.is_full() => p,
            _ => new,
        }
    }
}

/// What the watcher and the signal handler tell the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Something under the policy folder (or on its path) changed.
    Changed,
    /// SIGHUP: run a full pass now.
    Hangup,
}

/// How a pass ended, as far as scheduling is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// The cloud failed (outage, throttling, credentials) or the pass panicked: back off.
    Failed,
}

/// How the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Shutdown requested; no pass was running or it finished within the grace period.
    Stopped,
    /// Shutdown requested and the running pass was aborted at the end of the grace period.
    GraceExceeded,
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub interval: Duration,
    pub debounce: Duration,
    pub retry: RetryPolicy,
    pub grace: Duration,
    pub heartbeat: Duration,
}

/// What the loop drives. Implemented by the daemon's pass runner, and by fakes in tests.
pub trait Passes: Send + Sync + 'static {
    fn run(self: Arc<Self>, trigger: Trigger) -> LocalBoxFuture<'static, Verdict>;
    /// A pass panicked; `message` is the panic payload.
    fn panicked(&self, trigger: Trigger, message: &str);
    /// The loop is alive (called every `Timing::heartbeat`).
    fn heartbeat(&self);
    /// The next automatic pass: which trigger and when; `failures` consecutive failed passes so far.
    fn scheduled(&self, trigger: Trigger, after: Duration, failures: u32);
    /// Shutdown began: stop starting new requests.
    fn stopping(&self);
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn join(
    running: &mut Option<(JoinHandle<Verdict>, Trigger)>,
) -> Result<Verdict, tokio::task::JoinError> {
    match running {
        Some((handle, _)) => handle.await,
        None => std::future::pending().await,
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the pass task was cancelled".to_string();
    }
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Jitter down to half the nominal delay, so replicas that failed together do not retry together.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Where the loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Taking triggers; `inputs` until the watcher's and SIGHUP's channel closes.
    Running { inputs: bool },
    /// Shutdown was requested: no pass starts, and the running one has until `until`.
    Stopping { until: Instant },
}

impl Phase {
    fn stopping(self) -> bool {
        matches!(self, Phase::Stopping { .. })
    }

    fn stop_at(self) -> Option<Instant> {
        match self {
            Phase::Stopping { until } => Some(until),
            Phase::Running { .. } => None,
        }
    }

    fn takes_inputs(self) -> bool {
        self == Phase::Running { inputs: true }
    }
}

/// Runs until `shutdown` completes and the running pass (if any) has finished or been aborted.
pub async fn run<P: Passes>(
    passes: Arc<P>,
    timing: Timing,
    mut inputs: mpsc::Receiver<Input>,
    shutdown: impl Future<Output = ()>,
) -> Exit {
    tokio::pin!(shutdown);
    let debounce_max = timing.debounce * DEBOUNCE_MAX_FACTOR;
    let mut pending = Some(Trigger::Startup);
    let mut running: Option<(JoinHandle<Verdict>, Trigger)> = None;
    // (first event of the burst, when the pass may start)
    let mut debounce: Option<(Instant, Instant)> = None;
    let mut next_auto: Option<(Instant, Trigger)> = None;
    let mut failures = 0u32;
    let mut phase = Phase::Running { inputs: true };
    let mut heartbeat = tokio::time::interval(timing.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        if running.is_none() {
            if phase.stopping() {
                return Exit::Stopped;
            }
            if let Some(t) = pending.take() {
                running = Some((tokio::task::spawn_local(passes.clone().run(t)), t));
            }
        }
        let stopping = phase.stopping();
        let idle = running.is_none() && pending.is_none();
        tokio::select! {
            biased;
            () = &mut shutdown, if !stopping => {
                passes.stopping();
                phase = Phase::Stopping { until: Instant::now() + timing.grace };
                pending = None;
                debounce = None;
            }
            () = sleep_until_opt(phase.stop_at()), if stopping => {
                if let Some((handle, _)) = running.take() {
                    handle.abort();
                }
                return Exit::GraceExceeded;
            }
            joined = join(&mut running) => {
                let Some((_, trigger)) = running.take() else { continue };
                let verdict = match joined {
                    Ok(v) => v,
                    Err(e) => {
                        passes.panicked(trigger, &panic_message(e));
                        Verdict::Failed
                    }
                };
                if stopping {
                    continue;
                }
                let now = Instant::now();
                match verdict {
                    Verdict::Failed => {
                        failures = failures.saturating_add(1);
                        next_auto = Some((now + jittered(timing.retry.delay(failures)), Trigger::Retry));
                    }
                    Verdict::Done if trigger.is_full() => {
                        failures = 0;
                        next_auto = Some((now + timing.interval, Trigger::Interval));
                    }
                    Verdict::Done => {}
                }
                if let Some((at, t)) = next_auto {
                    passes.scheduled(t, at.saturating_duration_since(now), failures);
                }
            }
            input = inputs.recv(), if phase.takes_inputs() => match input {
                None => phase = Phase::Running { inputs: false },
                Some(Input::Hangup) => pending = Some(Trigger::merge(pending, Trigger::Signal)),
                Some(Input::Changed) => {
                    let now = Instant::now();
                    let first = debounce.map_or(now, |(first, _)| first);
                    debounce = Some((first, (now + timing.debounce).min(first + debounce_max)));
                }
            },
            () = sleep_until_opt(debounce.map(|(_, at)| at)), if !stopping => {
                debounce = None;
                pending = Some(Trigger::merge(pending, Trigger::File));
            }
            () = sleep_until_opt(next_auto.map(|(at, _)| at)), if idle && !stopping => {
                if let Some((_, t)) = next_auto.take() {
                    pending = Some(t);
                }
            }
            _ = heartbeat.tick() => passes.heartbeat(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every pass; each pass takes `pass_time` and returns the scripted verdicts in order.
    struct Fake {
        log: Mutex<Vec<(Trigger, Instant)>>,
        verdicts: Mutex<Vec<Verdict>>,
        pass_time: Duration,
        panics: Mutex<Vec<String>>,
        panic_on_first: bool,
        stopped: Mutex<bool>,
        finished: Mutex<u32>,
    }

    impl Fake {
        fn new(pass_time: Duration) -> Arc<Fake> {
            Arc::new(Fake {
                log: Mutex::new(Vec::new()),
                verdicts: Mutex::new(Vec::new()),
                pass_time,
                panics: Mutex::new(Vec::new()),
                panic_on_first: false,
                stopped: Mutex::new(false),
                finished: Mutex::new(0),
            })
        }

        fn triggers(&self) -> Vec<Trigger> {
            self.log.lock().unwrap().iter().map(|(t, _)| *t).collect()
        }
    }

    impl Passes for Fake {
        fn run(self: Arc<Self>, trigger: Trigger) -> LocalBoxFuture<'static, Verdict> {
            Box::pin(async move {
                let n = {
                    let mut log = self.log.lock().unwrap();
                    log.push((trigger, Instant::now()));
                    log.len()
                };
                if self.panic_on_first && n == 1 {
                    panic!("boom in pass {n}");
                }
                tokio::time::sleep(self.pass_time).await;
                *self.finished.lock().unwrap() += 1;
                let mut v = self.verdicts.lock().unwrap();
                if v.is_empty() {
                    Verdict::Done
                } else {
                    v.remove(0)
                }
            })
        }
        fn panicked(&self, _: Trigger, message: &str) {
            self.panics.lock().unwrap().push(message.to_string());
        }
        fn heartbeat(&self) {}
        fn scheduled(&self, _: Trigger, _: Duration, _: u32) {}
        fn stopping(&self) {
            *self.stopped.lock().unwrap() = true;
        }
    }

    fn timing() -> Timing {
        Timing {
            interval: Duration::from_secs(60),
            debounce: Duration::from_millis(300),
            retry: RetryPolicy {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            grace: Duration::from_secs(20),
            heartbeat: Duration::from_secs(1),
        }
    }

    /// Starts the loop; returns the input sender, the shutdown trigger and the loop's handle.
    fn start(
        fake: &Arc<Fake>,
        timing: Timing,
    ) -> (
        mpsc::Sender<Input>,
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<Exit>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::task::spawn_local(run(fake.clone(), timing, rx, async move {
            let _ = stop_rx.await;
        }));
        (tx, stop_tx, handle)
    }

    async fn advance(d: Duration) {
        tokio::time::sleep(d).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_file_events_is_one_pass_after_the_quiet_window() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let fake = Fake::new(Duration::from_millis(10));
                let (tx, stop, handle) = start(&fake, timing());
                advance(Duration::from_millis(100)).await;
                assert_eq!(fake.triggers(), [Trigger::Startup]);
                for _ in 0..20 {
                    tx.send(Input::Changed).await.unwrap();
                    advance(Duration::from_millis(50)).await;
                }
                // 20 events 50 ms apart: still inside the burst, no pass yet... until the cap of 5 windows.
                advance(Duration::from_millis(400)).await;
                let t = fake.triggers();
                assert!(t.len() <= 3 && t.len() >= 2, "{t:?}");
                assert!(t[1..].iter().all(|t| *t == Trigger::File));
                let before = t.len();
                tx.send(Input::Changed).await.unwrap();
                advance(Duration::from_millis(299)).await;
                assert_eq!(
                    fake.triggers().len(),
                    before,
                    "no pass before the window ends"
                );
                advance(Duration::from_millis(20)).await;
                assert_eq!(fake.triggers().len(), before + 1);
                stop.send(()).unwrap();
                assert_eq!(handle.await.unwrap(), Exit::Stopped);
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn changes_during_a_pass_schedule_exactly_one_more() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let fake = Fake::new(Duration::from_secs(5));
                let (tx, stop, handle) = start(&fake, timing());
                advance(Duration::from_millis(10)).await;
                for _ in 0..3 {
                    tx.send(Input::Changed).await.unwrap();
                    advance(Duration::from_millis(400)).await;
                    tx.send(Input::Hangup).await.unwrap();
                }
                advance(Duration::from_secs(20)).await;
                // Start-up, then one merged pass; the SIGHUP (full) wins over the file changes.
                assert_eq!(fake.triggers(), [Trigger::Startup, Trigger::Signal]);
                let log = fake.log.lock().unwrap().clone();
                assert!(
                    log[1].1 - log[0].1 >= Duration::from_secs(5),
                    "never two passes at once"
                );
                drop(log);
                stop.send(()).unwrap();
                handle.await.unwrap();
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_runs_full_passes_and_failures_back_off_exponentially() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let fake = Fake::new(Duration::from_millis(1));
                fake.verdicts.lock().unwrap().extend([
                    Verdict::Done,
                    Verdict::Failed,
                    Verdict::Failed,
                    Verdict::Failed,
                    Verdict::Failed,
                ]);
                let (_tx, stop, handle) = start(&fake, timing());
                advance(Duration::from_secs(60 + 1 + 2 + 4 + 8 + 2)).await;
                let log = fake.log.lock().unwrap().clone();
                let t: Vec<_> = log.iter().map(|(t, _)| *t).collect();
                assert_eq!(
                    t,
                    [
                        Trigger::Startup,
                        Trigger::Interval,
                        Trigger::Retry,
                        Trigger::Retry,
                        Trigger::Retry,
                        Trigger::Retry
                    ]
                );
                // Gaps after the 2nd, 3rd and 4th consecutive failure: jittered to [d/2, d] of 2 s, 4 s, 8 s.
                for (i, nominal) in [2u64, 4, 8].iter().enumerate() {
                    let gap = log[i + 3].1 - log[i + 2].1;
                    let d = Duration::from_secs(*nominal);
                    assert!(
                        gap >= d / 2 && gap <= d + Duration::from_millis(10),
                        "gap {i}: {gap:?}"
                    );
                }
                stop.send(()).unwrap();
                handle.await.unwrap();
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_pass_is_reported_and_the_loop_carries_on() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let mut fake = Fake::new(Duration::from_millis(1));
                Arc::get_mut(&mut fake).unwrap().panic_on_first = true;
                let (_tx, stop, handle) = start(&fake, timing());
                advance(Duration::from_secs(2)).await;
                assert_eq!(fake.panics.lock().unwrap().as_slice(), ["boom in pass 1"]);
                assert_eq!(fake.triggers(), [Trigger::Startup, Trigger::Retry]);
                stop.send(()).unwrap();
                assert_eq!(handle.await.unwrap(), Exit::Stopped);
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_the_running_pass_within_the_grace_period() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let fake = Fake::new(Duration::from_secs(5));
                let (tx, stop, handle) = start(&fake, timing());
                advance(Duration::from_secs(1)).await;
                stop.send(()).unwrap();
                advance(Duration::from_millis(10)).await;
                assert!(*fake.stopped.lock().unwrap());
                // Triggers after shutdown are ignored.
                let _ = tx.send(Input::Hangup).await;
                assert_eq!(handle.await.unwrap(), Exit::Stopped);
                assert_eq!(
                    *fake.finished.lock().unwrap(),
                    1,
                    "the running pass finished"
                );
                assert_eq!(fake.triggers(), [Trigger::Startup]);
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_outliving_the_grace_period_is_aborted() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let fake = Fake::new(Duration::from_secs(600));
                let mut t = timing();
                t.grace = Duration::from_secs(2);
                let (_tx, stop, handle) = start(&fake, t);
                advance(Duration::from_secs(1)).await;
                let asked = Instant::now();
                stop.send(()).unwrap();
                assert_eq!(handle.await.unwrap(), Exit::GraceExceeded);
                assert!(Instant::now() - asked <= Duration::from_secs(3));
                assert_eq!(*fake.finished.lock().unwrap(), 0);
            })
            .await;
    }
}
