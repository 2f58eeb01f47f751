//! Loopback stand-ins for STS and the metadata service, for the unit tests of this folder.

use axum::http::{Method, StatusCode, Uri};
use std::sync::Arc;

/// A server on 127.0.0.1 answering `(method, path)` from `routes` with `(status, body)`, and 404 with
/// an empty body for anything else. Returns its base URL (`http://127.0.0.1:<port>/`).
pub(crate) async fn serve(routes: &[(&str, &str, u16, &str)]) -> String {
    let routes: Arc<Vec<(Method, String, u16, String)>> = Arc::new(
        routes
            .iter()
            .map(|(m, p, s, b)| {
                (
                    Method::from_bytes(m.as_bytes()).expect("method"),
                    p.to_string(),
                    *s,
                    b.to_string(),
                )
            })
            .collect(),
    );
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let routes = routes.clone();
        async move {
            let (status, body) = routes
                .iter()
                .find(|(m, p, _, _)| *m == method && p == uri.path())
                .map(|(_, _, s, b)| (*s, b.clone()))
                .unwrap_or((404, String::new()));
            (StatusCode::from_u16(status).expect("status"), body)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A loopback URL nothing listens on: connecting to it is refused.
pub(crate) fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/")
}

/// The message of an error, whatever the `Ok` type (some are not `Debug`).
pub(crate) fn message<T, E: ToString>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A server answering every request with `status` and an STS-style error whose `Message` is the
/// request's own body, as `SignatureDoesNotMatch` quotes what it received.
pub(crate) async fn serve_echo(status: u16) -> String {
    let app = axum::Router::new().fallback(move |body: String| async move {
        let answer = serde_json::json!({
            "RequestId": "R-echo",
            "Code": "SignatureDoesNotMatch",
            "Message": body,
        });
        (
            StatusCode::from_u16(status).expect("status"),
            answer.to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A server that accepts connections and never answers: requests to it time out.
pub(crate) async fn stalled() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// A server that reads each request whole, then answers 200 with a body shorter than its
/// `Content-Length` and closes: the answer is cut short.
pub(crate) async fn truncated() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then as much body as they announce.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"Credentials\":")
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url
}
