//! The status page's HTTP side: `/status` (HTML), its script and style (served from here: no CDN,
//! the page works on an air-gapped cluster), `/status.json` and `/status/group.json`.
//!
//! Every response carries a strict Content-Security-Policy (scripts and styles from this origin
//! only, no inline code, no framing). The script builds the page with `textContent` only, so no
//! value from the cloud or the folder (names, reasons, user names) is ever parsed as HTML. The
//! table is filtered, sorted and paged in the browser (100 rows a page), so 10,000 groups are one
//! JSON document and never 10,000 DOM rows.

use super::{Board, Key};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &str = include_str!("status.html");
pub(super) const JS: &str = include_str!("status.js");
const CSS: &str = include_str!("status.css");

/// The routes of `--status-addr`; with `auth`, every request (the page, its script and style, the
/// data) needs the credentials of one of its users.
pub fn router(board: Arc<Board>, auth: Option<Arc<super::auth::Htpasswd>>) -> Router {
    let routes = routes(board);
    match auth {
        None => routes,
        Some(file) => {
            let guard = Arc::new(super::auth::Guard::new(file));
            routes.layer(axum::middleware::from_fn_with_state(
                guard,
                super::auth::require,
            ))
        }
    }
}

fn routes(board: Arc<Board>) -> Router {
    Router::new()
        .route(
            "/status",
            get(|| async { asset("text/html; charset=utf-8", HTML) }),
        )
        .route(
            "/status.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/status.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route("/status.json", get(status_json))
        .route("/status/group.json", get(group_json))
        .with_state(board)
        // gzip for clients that accept it: /status.json of 10,000 groups goes from 3.2 MB to
        // 81 kB. No secret is ever in a response (credentials travel in request headers only), so
        // compressing text that mixes cloud names with other data gives a BREACH attack nothing.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
}

fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    secure(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn json_response(v: &serde_json::Value) -> Response {
    secure(([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response())
}

async fn status_json(State(board): State<Arc<Board>>) -> Response {
    json_response(&board.json(chrono::Utc::now()))
}

#[derive(serde::Deserialize)]
struct GroupQuery {
    #[serde(default)]
    account: String,
    region: String,
    id: String,
}

async fn group_json(State(board): State<Arc<Board>>, Query(q): Query<GroupQuery>) -> Response {
    let key: Key = (q.account, q.region, q.id);
    match super::group_json(&board.snapshot(), &board, &key) {
        Some(v) => json_response(&v),
        None => secure((StatusCode::NOT_FOUND, "no such governed group\n").into_response()),
    }
}
