//! The request pipeline without HTTP: raw query and body in, HTTP status and error code out. The
//! entry point for fuzzing the simulator's request parsing, signature checks and handlers.

use super::{parse_form, Answer, Params, Simulator};

impl Simulator {
    /// Runs one request through the same steps as `/` (form decoding, signature, nonce, action,
    /// faults, handler, call log) and returns the HTTP status (0 for "connection dropped") and the
    /// error `Code` of a JSON error answer. Injected latency and hangs are skipped: this is synchronous.
    pub fn handle_raw(
        &self,
        method: &str,
        query: &[u8],
        body: &[u8],
        form: bool,
    ) -> (u16, Option<String>) {
        let mut params = Params::new();
        parse_form(&String::from_utf8_lossy(query), &mut params);
        if form {
            parse_form(&String::from_utf8_lossy(body), &mut params);
        }
        let key = super::chaos::request_key(&params);
        match self.handle(method, &params, None, key, &super::RequestMeta::default()) {
            Answer::Respond(r) => {
                let status = r.status().as_u16();
                // The body is a complete in-memory buffer, so this never waits.
                let bytes =
                    futures::executor::block_on(axum::body::to_bytes(r.into_body(), 1 << 20))
                        .unwrap_or_default();
                let code = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("Code").and_then(|c| c.as_str()).map(str::to_string));
                (status, code)
            }
            Answer::Drop => (0, None),
        }
    }
}
