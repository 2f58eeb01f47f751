//! Serving one listener (`/events`, `/metrics`, `/healthz`, `/readyz`, and any later one) within
//! bounds, so that nothing but a TCP connection can neither hold the daemon's files nor keep a probe
//! or a real event from being answered.
//!
//! Three bounds, figures in [`Limits::DEFAULT`] and docs/daemon.md ("Listeners"):
//! - **Idle**: a connection that is not in the middle of a request (just accepted, sending its request
//!   head byte by byte, or kept alive between requests) is closed once it has been idle for
//!   `header_timeout`. hyper's own header-read timeout is set to the same figure.
//! - **Body**: while a handler reads a request body, each chunk must arrive within
//!   `body_idle_timeout`; a body that stalls ends in an error the handler answers (the receiver's
//!   400), and the connection closes.
//! - **Count**: at most `max_connections` connections are open per listener. The listener keeps
//!   accepting at the cap (a connection left in the kernel's backlog is a probe that times out):
//!   each new connection sheds the connection that has been idle the longest. Only a connection in
//!   the middle of a request is safe from shedding, and reaching that point on `/events` takes the
//!   bearer token (an unauthorised request is answered 401 before its body is read), so idle and
//!   unauthenticated connections go first and a probe or a real event always finds room. When every
//!   connection is in the middle of a request, the new one is closed at once.
//!
//! The daemon's file budget follows: two listeners of `max_connections` each, the status page's
//! smaller cap ([`Limits::STATUS`]) and [`OTHER_FILES`] stay below the systemd default of 1,024 open
//! files ([`FILE_BUDGET`]); the unit sets `LimitNOFILE` higher anyway.

use axum::body::Body;
use axum::Router;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

/// The bounds of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; at the cap the longest-idle one is shed for each new one.
    pub max_connections: usize,
    /// How long a connection may sit without a request in progress: from accept to a complete
    /// request head, and between requests on a kept-alive connection.
    pub header_timeout: Duration,
    /// The longest wait for the next chunk of a request body a handler is reading.
    pub body_idle_timeout: Duration,
}

impl Limits {
    /// What the daemon's listeners use. A Kubernetes probe or a Prometheus scrape completes in
    /// milliseconds and an EventBridge delivery is one small POST, so ten seconds is generous for
    /// honest clients and short for one that only holds a socket; 256 connections are far more than
    /// probes, scrapers and EventBridge use at once.
    pub const DEFAULT: Limits = Limits {
        max_connections: 256,
        header_timeout: Duration::from_secs(10),
        body_idle_timeout: Duration::from_secs(10),
    };

    /// The status page's (`--status-addr`): a few people with browsers (each opens a handful of
    /// connections) and `sgpolicy status`, so 64 connections are plenty, and the smaller cap keeps all
    /// three listeners inside [`FILE_BUDGET`].
    pub const STATUS: Limits = Limits {
        max_connections: 64,
        ..Limits::DEFAULT
    };
}

/// The systemd default `LimitNOFILE` (its soft limit): what the daemon must fit even when the unit
/// file is not ours.
pub const FILE_BUDGET: usize = 1024;
/// Files the daemon holds besides its listeners' connections: up to 256 connections to ECS,
/// ActionTrail and STS (one per concurrent request at the largest `--concurrency`), and 64 for the
/// rest with room to spare (the standard streams, the listening sockets, the runtime's epoll and
/// wake descriptors, the folder watcher's inotify descriptor, a policy file being read, the report
/// file being replaced).
pub const OTHER_FILES: usize = 256 + 64;
/// The listeners at [`Limits::DEFAULT`] the daemon serves at most: `--metrics-addr` and
/// `--events-addr` (`--status-addr` is served within [`Limits::STATUS`]).
pub const LISTENERS: usize = 2;

/// The state of one open connection, shared by its task, its requests and the accept loop.
struct Conn {
    /// Requests whose response has not been produced yet.
    in_flight: AtomicUsize,
    /// When the connection last became idle: accepted, or its last response produced.
    idle_since: Mutex<Instant>,
    /// Told to close (shed at the cap).
    shed: Notify,
}

impl Conn {
    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }
}

/// Marks a connection busy for as long as one request is being answered.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Busy {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open connections of one listener, by a serial number.
#[derive(Default)]
struct Table {
    conns: HashMap<u64, Arc<Conn>>,
    next: u64,
}

impl Table {
    /// Makes room for one more connection under `cap`: sheds the longest-idle connection when at the
    /// cap. `false` when every connection is answering a request (the new one must be refused).
    fn make_room(&mut self, cap: usize) -> Result<Option<u64>, ()> {
        if self.conns.len() < cap {
            return Ok(None);
        }
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle())
            .min_by_key(|(id, c)| (c.idle_since(), **id))
            .map(|(id, _)| *id)
            .ok_or(())?;
        if let Some(c) = self.conns.remove(&victim) {
            c.shed.notify_one();
        }
        Ok(Some(victim))
    }
}

/// The error a stalled request body ends with.
#[derive(Debug, thiserror::Error)]
#[error("no request body data for {0:?}")]
struct BodyStalled(Duration);

/// `body` as a stream whose every chunk must arrive within `idle` of the last.
fn idle_bounded(body: Incoming, idle: Duration) -> Body {
    let chunks = Body::new(body).into_data_stream();
    let bounded = futures::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => Some((Err(axum::Error::new(BodyStalled(idle))), None)),
        }
    });
    Body::from_stream(bounded)
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then stops accepting,
/// lets requests in progress finish (their connections close after answering) and returns once every
/// connection is closed. The caller bounds that wait.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of files (or a connection reset before it was accepted): wait a little rather
                // than spin; the cap makes the first case rare.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            shed: Notify::new(),
        });
        let id = {
            let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
            match t.make_room(limits.max_connections) {
                Ok(shed) => {
                    if shed.is_some() && last_warning.map_or(true, |w| w.elapsed() > MINUTE) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(
                            "{} connections open, the cap: closing the longest-idle ones to serve new \
                             ones (someone may be holding connections open)",
                            limits.max_connections
                        );
                    }
                }
                Err(()) => {
                    tracing::debug!("every connection is answering a request: refusing a new one");
                    continue;
                }
            }
            let id = t.next;
            t.next += 1;
            t.conns.insert(id, conn.clone());
            id
        };
        tasks.spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            conn,
            stop_rx.clone(),
            ServedBy {
                table: table.clone(),
                id,
            },
        ));
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

const MINUTE: Duration = Duration::from_secs(60);

/// Takes a connection out of the table when its task ends, however it ends.
struct ServedBy {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Drop for ServedBy {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .remove(&self.id);
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    limits: Limits,
    conn: Arc<Conn>,
    mut stop: watch::Receiver<bool>,
    _served_by: ServedBy,
) {
    let state = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::new(state.clone());
        let req = req.map(|body| idle_bounded(body, limits.body_idle_timeout));
        let answer = router.clone().oneshot(req);
        async move {
            let answer = answer.await;
            drop(busy);
            answer
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(http);
    let mut draining = false;
    loop {
        let idle_until = conn.idle_since() + limits.header_timeout;
        tokio::select! {
            _ = http.as_mut() => return,
            _ = conn.shed.notified() => return,
            _ = stop.changed(), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_until) => {
                if conn.is_idle() && conn.idle_since().elapsed() >= limits.header_timeout {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const PATIENCE: Duration = Duration::from_secs(30);

    #[test]
    fn every_listener_at_its_cap_fits_the_systemd_default_file_budget() {
        let worst = LISTENERS * Limits::DEFAULT.max_connections
            + Limits::STATUS.max_connections
            + OTHER_FILES;
        assert!(worst < FILE_BUDGET, "{worst} files against {FILE_BUDGET}");
    }

    struct Served {
        addr: std::net::SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
        /// Told when `POST /events` starts, before it reads its body.
        event_started: Arc<Notify>,
    }

    /// `/readyz`, and `POST /events` answering how many body bytes it read, served within `limits`.
    async fn serving(limits: Limits) -> Served {
        let event_started = Arc::new(Notify::new());
        let started = event_started.clone();
        let router = Router::new()
            .route("/readyz", get(|| async { "ready" }))
            .route(
                "/events",
                post(move |body: Body| async move {
                    started.notify_one();
                    match axum::body::to_bytes(body, 1 << 20).await {
                        Ok(b) => (axum::http::StatusCode::OK, format!("{} bytes", b.len())),
                        Err(_) => (axum::http::StatusCode::BAD_REQUEST, "unreadable".into()),
                    }
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, limits, async {
            let _ = stopped.await;
        }));
        Served {
            addr,
            stop: Some(stop),
            task,
            event_started,
        }
    }

    /// Sends `request` on a new connection and returns the whole answer (the request closes it).
    async fn ask(addr: std::net::SocketAddr, request: &str) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut answer))
            .await
            .expect("an answer")
            .expect("readable");
        answer
    }

    /// Reads until the peer closes; `Err` when it has not closed within [`PATIENCE`].
    async fn closed_by_peer(tcp: &mut TcpStream) -> Result<(), &'static str> {
        let mut sink = [0u8; 256];
        loop {
            match tokio::time::timeout(PATIENCE, tcp.read(&mut sink)).await {
                Err(_) => return Err("still open"),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The server's established connections on `addr` as the kernel lists them (/proc/net/tcp).
    fn open_on(addr: std::net::SocketAddr) -> usize {
        let port = format!(":{:04X}", addr.port());
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&port) && f[3] == "01"
            })
            .count()
    }

    /// Polls `cond` until it holds; panics with `what` after [`PATIENCE`].
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    const READYZ: &str = "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn at_the_cap_idle_connections_are_shed_so_a_probe_and_an_event_are_still_answered() {
        let limits = Limits {
            max_connections: 8,
            ..Limits::DEFAULT
        };
        let served = serving(limits).await;
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(TcpStream::connect(served.addr).await.unwrap());
        }
        // Half-sent requests are idle too.
        for tcp in idle.iter_mut().take(20) {
            tcp.write_all(b"GET /readyz HTTP/1.1\r\nHo").await.unwrap();
        }
        let answer = ask(served.addr, READYZ).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let event = "POST /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
        let answer = ask(served.addr, event).await;
        assert!(answer.ends_with("5 bytes"), "{answer}");
        // The oldest idle connections were closed to make room; no more than the cap stay open.
        assert_eq!(closed_by_peer(&mut idle[0]).await, Ok(()));
        until("the cap to hold", || {
            open_on(served.addr) <= limits.max_connections
        })
        .await;
    }

    #[tokio::test]
    async fn a_connection_in_the_middle_of_a_request_is_never_shed() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::DEFAULT
        };
        let served = serving(limits).await;
        let mut slow = TcpStream::connect(served.addr).await.unwrap();
        slow.write_all(
            b"POST /events HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\nab",
        )
        .await
        .unwrap();
        served.event_started.notified().await;
        // Newer connections push over the cap again and again; the request in progress stays.
        for _ in 0..5 {
            let answer = ask(served.addr, READYZ).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        slow.write_all(b"cd").await.unwrap();
        let mut answer = String::new();
        slow.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("4 bytes"), "{answer}");
    }

    #[tokio::test]
    async fn a_half_sent_request_head_and_a_kept_alive_idle_connection_are_closed_after_the_header_timeout(
    ) {
        let limits = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::DEFAULT
        };
        let served = serving(limits).await;
        let mut half = TcpStream::connect(served.addr).await.unwrap();
        half.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        assert_eq!(closed_by_peer(&mut half).await, Ok(()));
        let mut kept = TcpStream::connect(served.addr).await.unwrap();
        kept.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(closed_by_peer(&mut kept).await, Ok(()));
    }

    #[tokio::test]
    async fn a_stalled_body_ends_the_request_after_the_body_idle_timeout() {
        let limits = Limits {
            body_idle_timeout: Duration::from_millis(300),
            ..Limits::DEFAULT
        };
        let served = serving(limits).await;
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        tcp.write_all(b"POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        let mut answer = vec![0u8; 512];
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut answer))
            .await
            .expect("an answer")
            .expect("readable");
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_returns_once_connections_are_closed() {
        let mut served = serving(Limits::DEFAULT).await;
        let mut idle = TcpStream::connect(served.addr).await.unwrap();
        until("the connection accepted", || open_on(served.addr) == 1).await;
        let _ = served.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, &mut served.task)
            .await
            .expect("serve returned")
            .unwrap();
        assert_eq!(closed_by_peer(&mut idle).await, Ok(()));
        assert!(TcpStream::connect(served.addr).await.is_err());
    }
}
