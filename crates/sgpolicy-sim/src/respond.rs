//! How the simulator answers: ECS's error body, request ids, and JSON or (minimal) XML rendering.

use super::handlers::Api;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An error as ECS reports it: HTTP status, dotted code and human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Sent as `x-acs-retry-after` (milliseconds), as some gateways do with throttling answers.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// The response format a request asked for. ECS answers XML unless `Format` says JSON (any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn from_param(v: Option<&str>) -> Format {
        match v {
            Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Xml,
        }
    }
}

/// A fresh request id in ECS's shape: an upper-case UUID.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// The error body ECS and STS send: `RequestId, HostId, Code, Message, Recommend`.
pub fn error_body(err: &ApiError, request_id: &str, api: Api, region: Option<&str>) -> Value {
    json!({
        "RequestId": request_id,
        "HostId": api.host(region),
        "Code": err.code,
        "Message": err.message,
        "Recommend": format!(
            "https://api.aliyun.com/troubleshoot?q={}&product={}&requestId={request_id}",
            err.code,
            api.product()
        ),
    })
}

/// Renders a body with the status and content type the format calls for. XML uses `root` as the
/// top element (`<Error>` or `<ActionResponse>`), arrays repeat their element name as ECS does.
pub fn render(status: u16, format: Format, root: &str, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (ctype, text) = match format {
        Format::Json => ("application/json;charset=utf-8", body.to_string()),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            write_xml(&mut out, root, body);
            ("text/xml;charset=utf-8", out)
        }
    };
    let mut resp = (status, text).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// A plain JSON answer for the admin paths.
pub fn admin_json(status: u16, body: Value) -> Response {
    render(status, Format::Json, "Response", &body)
}

fn write_xml(out: &mut String, name: &str, v: &Value) {
    match v {
        Value::Array(items) => {
            for item in items {
                write_xml(out, name, item);
            }
        }
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            write_fields(out, map);
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

fn write_fields(out: &mut String, map: &Map<String, Value>) {
    for (k, v) in map {
        write_xml(out, k, v);
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_upper_case_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_uppercase());
    }

    #[test]
    fn xml_repeats_array_elements() {
        let mut s = String::new();
        write_xml(&mut s, "R", &json!({"A": {"B": [1, "x<"]}}));
        assert_eq!(s, "<R><A><B>1</B><B>x&lt;</B></A></R>");
    }

    #[test]
    fn format_is_case_insensitive_and_defaults_to_xml() {
        assert_eq!(Format::from_param(Some("json")), Format::Json);
        assert_eq!(Format::from_param(Some("JSON")), Format::Json);
        assert_eq!(Format::from_param(None), Format::Xml);
    }
}
