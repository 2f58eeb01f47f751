//! The push receiver's request handling, in process: any method, path, headers and body sent to the
//! axum router that serves `POST /events`. Never a panic; only the documented answers; nothing past
//! the token check without the token; the token never echoed.
#![no_main]

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use libfuzzer_sys::fuzz_target;
use sgpolicy::ecs::credentials::Secret;
use sgpolicy::events::{receiver, Heard, Status};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token-0123456789abcdef";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// The other end of the receiver's sink: drained now and then, so both a free and a full
    /// queue (503) are reached.
    queue: Mutex<mpsc::Receiver<Heard>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let (tx, rx) = mpsc::channel(8);
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            router: receiver::router(Secret::new(TOKEN), tx, Arc::new(Status::new())),
            queue: Mutex::new(rx),
        }
    })
}

/// Splits off the next field: up to the next 0xff byte.
fn field<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let end = data.iter().position(|b| *b == 0xff).unwrap_or(data.len());
    let (head, rest) = data.split_at(end);
    *data = rest.get(1..).unwrap_or(&[]);
    head
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, mut data)) = input.split_first() else {
        return;
    };
    let f = fixture();
    let method = match control & 0x07 {
        0..=3 => Method::POST,
        4 => Method::GET,
        5 => Method::PUT,
        6 => Method::HEAD,
        _ => Method::from_bytes(field(&mut data)).unwrap_or(Method::OPTIONS),
    };
    let path = match (control >> 3) & 0x03 {
        0 | 1 => "/events".to_string(),
        2 => "/".to_string(),
        _ => format!("/{}", String::from_utf8_lossy(field(&mut data))),
    };
    let auth = match (control >> 5) & 0x03 {
        0 | 1 => Some(format!("Bearer {TOKEN}")),
        2 => None,
        _ => Some(String::from_utf8_lossy(field(&mut data)).into_owned()),
    };
    let mut request = Request::builder().method(method.clone());
    request = match path.parse::<axum::http::Uri>() {
        Ok(uri) => request.uri(uri),
        Err(_) => request.uri("/events"),
    };
    let authorised = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
    if let Some(a) = auth.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
        request = request.header("authorization", a);
    }
    // Up to four arbitrary headers, then the body.
    for _ in 0..(control >> 7) * 4 {
        let (name, value) = (field(&mut data), field(&mut data));
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            if n != "authorization" {
                request = request.header(n, v);
            }
        }
    }
    let Ok(request) = request.body(Body::from(data.to_vec())) else {
        return;
    };
    if control & 0x01 == 0 {
        let mut queue = f.queue.lock().unwrap();
        while queue.try_recv().is_ok() {}
    }
    let response = f
        .runtime
        .block_on(f.router.clone().oneshot(request))
        .expect("the router is infallible");
    let status = response.status().as_u16();
    assert!(
        [202, 400, 401, 404, 405, 413, 415, 503].contains(&status),
        "answered {status}"
    );
    let is_events_post = path == "/events" && method == Method::POST;
    if is_events_post && !authorised {
        assert_eq!(status, 401, "an unauthorised push got past the token check");
    }
    if status == 503 {
        assert!(response.headers().contains_key("retry-after"));
    }
    let body = f
        .runtime
        .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
        .expect("a short body");
    assert!(
        !String::from_utf8_lossy(&body).contains(TOKEN),
        "the token was echoed"
    );
});
