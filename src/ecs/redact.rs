//! Scrubs known secrets out of text that came from elsewhere (server error messages, STS answers).
//!
//! A server can echo what it received: `SignatureDoesNotMatch` quotes the string to sign, which
//! carries the `SecurityToken` percent-encoded twice. So each secret is removed raw, encoded once and
//! encoded twice, before the text reaches an error or a log line.

use super::sign::encode;

/// What replaces a secret.
pub const MASK: &str = "***";

/// `text` with every occurrence of each secret (raw, percent-encoded once or twice) replaced by
/// [`MASK`]. Empty secrets are ignored (they would match everywhere).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    let mut forms: Vec<String> = Vec::new();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let once = encode(s);
        let twice = encode(&once);
        // `+` instead of `%20` is how form encoders write spaces; cover that spelling too.
        let plus = once.replace("%20", "+");
        forms.extend([twice, once, plus, s.to_string()]);
    }
    // Longest first, so a raw secret that is a prefix of its encoded form cannot leave a tail behind.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    for f in forms {
        if out.contains(&f) {
            out = out.replace(&f, MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_raw_and_encoded_forms() {
        let token = "CAIS+/tok=en:1";
        let once = encode(token);
        let twice = encode(&once);
        let text = format!("a {token} b {once} c {twice} d");
        let r = redact(&text, &[token]);
        assert_eq!(r, "a *** b *** c *** d");
    }

    #[test]
    fn empty_secrets_change_nothing() {
        assert_eq!(redact("hello", &["", ""]), "hello");
    }

    #[test]
    fn server_string_to_sign_loses_the_token() {
        let msg = "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3Did%26SecurityToken%3DCAIS%252Fsecret%253D";
        let r = redact(msg, &["CAIS/secret="]);
        assert!(!r.contains("CAIS"), "{r}");
        assert!(r.contains("AccessKeyId%3Did"));
    }
}
