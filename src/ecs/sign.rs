//! RPC signature V1 (HMAC-SHA1), as a pure function of the parameters, the HTTP method and the secret.
//!
//! Each step is a value with `Display` so a failing test (or a `SignatureDoesNotMatch` whose message
//! carries the server's string to sign) can be compared step by step, the way `aws-sigv4` does it.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::fmt;
use std::ops::Range;

/// Percent-encodes one name or value the way the RPC signature requires.
pub fn encode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + s.len() / 2);
    encode_into(&mut out, s);
    text(out)
}

/// [`encode`], appended to `out`. Alibaba's encoding keeps only the RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - _ . ~`); every other byte of the UTF-8 text, `*` and space included, becomes
/// upper-case `%XY` (what `percent_encoding` does with `NON_ALPHANUMERIC` minus `-_.~`, written
/// byte by byte: signing calls this for every parameter of every request, twice).
pub fn encode_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const UNRESERVED: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~');
            b += 1;
        }
        t
    };
    let mut rest = s.as_bytes();
    out.reserve(rest.len());
    while let Some(i) = rest.iter().position(|&b| !UNRESERVED[usize::from(b)]) {
        let b = rest[i];
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Bytes that are text by construction: [`encode_into`]'s output is ASCII, and so is everything it is
/// joined with (a method is text, and upper-casing its ASCII letters keeps it so).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}

/// Parameters sorted by encoded name and joined `name=value&...`; `Signature` itself is excluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalQuery(String);

impl CanonicalQuery {
    pub fn new<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        // Every name and value is encoded into one buffer; the pairs are its ranges, sorted by
        // (encoded name, encoded value).
        let mut encoded = Vec::with_capacity(512);
        let mut pairs: Vec<(Range<usize>, Range<usize>)> = Vec::with_capacity(16);
        for (name, value) in params {
            if name == "Signature" {
                continue;
            }
            let start = encoded.len();
            encode_into(&mut encoded, name);
            let middle = encoded.len();
            encode_into(&mut encoded, value);
            pairs.push((start..middle, middle..encoded.len()));
        }
        let pair =
            |(n, v): &(Range<usize>, Range<usize>)| (&encoded[n.clone()], &encoded[v.clone()]);
        pairs.sort_by(|a, b| pair(a).cmp(&pair(b)));
        let mut joined = Vec::with_capacity(encoded.len() + 2 * pairs.len());
        for p in &pairs {
            let (n, v) = pair(p);
            if !joined.is_empty() {
                joined.push(b'&');
            }
            joined.extend_from_slice(n);
            joined.push(b'=');
            joined.extend_from_slice(v);
        }
        CanonicalQuery(text(joined))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CanonicalQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `METHOD&%2F&encode(canonical)`: the canonical query is encoded a second time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringToSign(String);

impl StringToSign {
    pub fn new(method: &str, canonical: &CanonicalQuery) -> Self {
        let canonical = canonical.as_str();
        let mut s = Vec::with_capacity(method.len() + 5 + canonical.len() + canonical.len() / 2);
        s.extend(method.bytes().map(|b| b.to_ascii_uppercase()));
        s.push(b'&');
        encode_into(&mut s, "/");
        s.push(b'&');
        encode_into(&mut s, canonical);
        StringToSign(text(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StringToSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `base64(HMAC-SHA1(secret + "&", string_to_sign))`, not yet percent-encoded.
pub fn signature(string_to_sign: &StringToSign, secret: &str) -> String {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes a key of any length"),
    };
    mac.update(string_to_sign.as_str().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Signs a full parameter set (common and business parameters together) for `method`.
pub fn sign<'a>(
    method: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let canonical = CanonicalQuery::new(params);
    signature(&StringToSign::new(method, &canonical), secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOC_PARAMS: &[(&str, &str)] = &[
        ("AccessKeyId", "testid"),
        ("Action", "DescribeRegions"),
        ("Format", "XML"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2016-02-23T12:46:24Z"),
        ("Version", "2014-05-26"),
    ];

    const GO_PARAMS: &[(&str, &str)] = &[
        ("AccessKeyId", "accessKeyId"),
        ("Action", ""),
        ("Format", "JSON"),
        ("RegionId", "regionId"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "MOCK_UUID"),
        ("SignatureType", ""),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "mock date"),
        ("Version", ""),
    ];

    fn params(base: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        base.to_vec()
    }

    #[test]
    fn documented_example_has_the_published_string_to_sign() {
        let sts = StringToSign::new("GET", &CanonicalQuery::new(params(DOC_PARAMS)));
        assert_eq!(
            sts.to_string(),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
    }

    #[test]
    fn documented_example_get_matches_vector() {
        assert_eq!(
            sign("GET", params(DOC_PARAMS), "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn documented_example_post_matches_vector() {
        assert_eq!(
            sign("POST", params(DOC_PARAMS), "testsecret"),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }

    #[test]
    fn older_timestamp_spelling_matches_vector() {
        let renamed: Vec<_> = DOC_PARAMS
            .iter()
            .map(|&(n, v)| (if n == "Timestamp" { "TimeStamp" } else { n }, v))
            .collect();
        assert_eq!(
            sign("GET", renamed, "testsecret"),
            "CT9X0VtwR86fNWSnsc6v8YGOjuE="
        );
    }

    #[test]
    fn go_sdk_vector_with_empty_values_matches() {
        assert_eq!(
            sign("GET", params(GO_PARAMS), "accessKeySecret"),
            "7loPmFjvDnzOVnQeQNj85S6nFGY="
        );
    }

    #[test]
    fn go_sdk_vector_with_security_token_matches() {
        let mut p = params(GO_PARAMS);
        p.push(("SecurityToken", "accessKeyStsToken"));
        assert_eq!(
            sign("GET", p, "accessKeySecret"),
            "5Nxdcler+ihqWqv0Hr2On4PsBf4="
        );
    }

    #[test]
    fn signature_parameter_is_never_signed() {
        let mut p = params(DOC_PARAMS);
        p.push(("Signature", "anything"));
        assert_eq!(sign("GET", p, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn encoding_follows_the_rpc_rules() {
        assert_eq!(encode("a b*c~d/e+f:g"), "a%20b%2Ac~d%2Fe%2Bf%3Ag");
        assert_eq!(encode("-_.~AZaz09"), "-_.~AZaz09");
        assert_eq!(encode("é"), "%C3%A9");
    }

    /// What `encode` was before it wrote bytes itself, and what it must keep producing.
    fn encode_with_percent_encoding(s: &str) -> String {
        const RPC_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        percent_encoding::utf8_percent_encode(s, RPC_ENCODE).to_string()
    }

    #[test]
    fn encoding_matches_percent_encoding_on_every_byte() {
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        assert_eq!(encode(&all), encode_with_percent_encoding(&all));
        let mut appended = b"x=".to_vec();
        encode_into(&mut appended, "a b");
        assert_eq!(appended, b"x=a%20b");
    }

    #[test]
    fn parameters_are_sorted_by_encoded_name() {
        let q = CanonicalQuery::new([("b", "2"), ("a", "1"), ("A", "0"), ("a.b", "3")]);
        assert_eq!(q.as_str(), "A=0&a=1&a.b=3&b=2");
    }

    fn decode(s: &str) -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .expect("encoder only emits valid UTF-8 escapes")
            .into_owned()
    }

    proptest! {
        #[test]
        fn encoding_round_trips_any_utf8(s in any::<String>()) {
            let e = encode(&s);
            prop_assert_eq!(&e, &encode_with_percent_encoding(&s));
            prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            prop_assert_eq!(decode(&e), s);
        }

        #[test]
        fn canonical_query_is_the_sorted_join_of_encoded_pairs(
            pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..8),
        ) {
            let mut expected: Vec<(String, String)> = pairs
                .iter()
                .filter(|(n, _)| n != "Signature")
                .map(|(n, v)| (encode_with_percent_encoding(n), encode_with_percent_encoding(v)))
                .collect();
            expected.sort();
            let expected: Vec<String> = expected.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let q = CanonicalQuery::new(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            prop_assert_eq!(q.as_str(), expected.join("&"));
        }

        #[test]
        fn signing_never_panics_and_is_deterministic(
            pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..8),
            secret in any::<String>(),
            post in any::<bool>(),
        ) {
            let method = if post { "POST" } else { "GET" };
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            let a = sign(method, borrowed.clone(), &secret);
            let b = sign(method, borrowed.into_iter().rev(), &secret);
            prop_assert_eq!(a.len(), 28);
            prop_assert_eq!(a, b);
        }
    }
}
