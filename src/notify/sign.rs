//! The signatures each sink's receiver checks, as pure functions of the secret, the time and the body
//! (the caller reads the clock). Sources, as each vendor documents them: docs/notifications.md.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The generic webhook's headers: the Unix time in seconds, and the signature over it and the body.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "X-Sgpolicy-Timestamp";
pub const WEBHOOK_SIGNATURE_HEADER: &str = "X-Sgpolicy-Signature";

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `sha256=` and the lowercase hex HMAC-SHA256, keyed with the secret, of `timestamp "." body`: the
/// timestamp is signed so a captured request cannot be replayed later with a fresh header.
pub fn webhook(secret: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp_secs}.").into_bytes();
    message.extend_from_slice(body);
    let mac = hmac_sha256(secret.as_bytes(), &message);
    let mut out = String::from("sha256=");
    for b in mac {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// DingTalk's robot signature before URL encoding: base64 of HMAC-SHA256 keyed with the secret over
/// `timestamp_ms "\n" secret`. Sent as the `timestamp` and (URL-encoded) `sign` query parameters.
pub fn dingtalk(secret: &str, timestamp_ms: i64) -> String {
    let message = format!("{timestamp_ms}\n{secret}");
    base64(&hmac_sha256(secret.as_bytes(), message.as_bytes()))
}

/// Feishu/Lark's custom bot signature: base64 of HMAC-SHA256 keyed with `timestamp_secs "\n" secret`
/// over an empty message. Sent as `timestamp` and `sign` in the JSON body.
pub fn lark(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    base64(&hmac_sha256(key.as_bytes(), b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?") pins the HMAC itself.
    #[test]
    fn the_hmac_is_rfc_4231_hmac_sha256() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(base64(&mac), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
    }

    #[test]
    fn each_signature_covers_its_documented_string_with_its_documented_key() {
        assert_eq!(
            dingtalk("SECx", 1_700_000_000_000),
            base64(&hmac_sha256(b"SECx", b"1700000000000\nSECx"))
        );
        assert_eq!(
            lark("k", 1_700_000_000),
            base64(&hmac_sha256(b"1700000000\nk", b""))
        );
        assert!(webhook("k", 5, b"{}").starts_with("sha256="));
        assert_ne!(
            webhook("k", 5, b"{}"),
            webhook("k", 6, b"{}"),
            "the timestamp is signed"
        );
    }
}
