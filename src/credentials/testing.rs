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
