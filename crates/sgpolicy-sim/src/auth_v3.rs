//! Signature V3 (`ACS3-HMAC-SHA256`) verification: what tea-openapi >= 0.4 sends by default.
//!
//! Written from the SDK's own signer (`alibabacloud_tea_openapi.utils.Utils.get_authorization`) and
//! checked against vectors that signer produced (`tests/sdk/v3_vectors.py`), independently of any
//! client code in this crate. The request carries
//! `Authorization: ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=h1;h2,Signature=hex` and the signature is
//! `hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(SHA256(canonical request))))` where the canonical
//! request is, one per line: method, path, canonical query, `name:value` per signed header (each line
//! ending in `\n`, hence an empty line after them), the signed header names joined with `;`, and
//! hex(SHA256(body)) -- which the client also sends as `x-acs-content-sha256`.
//!
//! Action and Version travel in the `x-acs-action` / `x-acs-version` headers, the timestamp in
//! `x-acs-date`, the nonce in `x-acs-signature-nonce`, an STS token in `x-acs-security-token`; the
//! business parameters stay in the query string (RPC style), which is not part of the body hash.

use super::auth::{self, Credential, Verified};
use super::respond::ApiError;
use axum::http::{HeaderMap, Uri};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The only V3 algorithm the simulator verifies (the SDK's default).
pub const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// What verification needs from one HTTP request, owned so the synchronous pipeline can hold it.
/// No `Debug`: the headers may carry an STS token.
#[derive(Clone)]
pub struct SignedRequest {
    pub method: String,
    /// The path as sent (already percent-encoded on the wire); `/` for every RPC call.
    pub path: String,
    /// The raw query string as sent, without `?`.
    pub query: String,
    pub headers: HeaderMap,
    /// hex(SHA256(body)) of the bytes actually received, not the client's claim.
    pub payload_sha256: String,
}

impl SignedRequest {
    pub fn new(method: &str, uri: &Uri, headers: HeaderMap, body: &[u8]) -> SignedRequest {
        SignedRequest {
            method: method.to_string(),
            path: match uri.path() {
                "" => String::from("/"),
                p => p.to_string(),
            },
            query: uri.query().unwrap_or("").to_string(),
            headers,
            payload_sha256: hex(&Sha256::digest(body)),
        }
    }

    /// The first value of a header, lossily decoded (a mangled value just fails the signature).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The access key the `Authorization` header names, for the call log even when verification fails.
    pub fn credential(&self) -> Option<String> {
        self.header("authorization")
            .and_then(|a| parse_authorization(&a))
            .map(|a| a.credential)
    }
}

/// True when the request is signed with V3: its `Authorization` header names an `ACS3-` algorithm.
pub fn is_v3(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"ACS3-"))
}

/// The parts of an `Authorization: ACS3-... Credential=..,SignedHeaders=..,Signature=..` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub algorithm: String,
    pub credential: String,
    /// Lower-cased, in the order the client listed them (its canonical headers follow that order).
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses the header; `None` when any of the three fields is missing or empty.
pub fn parse_authorization(value: &str) -> Option<Authorization> {
    let (algorithm, rest) = value.trim().split_once(' ')?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v.trim()),
            Some(("SignedHeaders", v)) => signed = Some(v.trim()),
            Some(("Signature", v)) => signature = Some(v.trim()),
            _ => {}
        }
    }
    let (credential, signed, signature) = (credential?, signed?, signature?);
    if credential.is_empty() || signed.is_empty() || signature.is_empty() {
        return None;
    }
    Some(Authorization {
        algorithm: algorithm.to_string(),
        credential: credential.to_string(),
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: signature.to_string(),
    })
}

/// Lower-case hex, as the SDK writes both the payload hash and the signature.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0F)]));
    }
    out
}

/// The query as the signer saw it: each pair form-decoded from the wire (the SDK sends
/// `urlencode`, so a space arrives as `+`), re-encoded with the RFC 3986 rule, sorted, `&`-joined.
/// Names are encoded too, as the V3 documentation says; the SDK leaves them raw, which is the same
/// for every ECS parameter name (letters, digits and `.` only).
pub fn canonical_query(raw: &str) -> String {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let decoded: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect();
    auth::sorted_pairs(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// `name:value\n` per signed header, in the listed order; repeated headers become their trimmed
/// values, sorted and joined with `,` (the SDK's rule). A listed header that is absent signs as empty.
pub fn canonical_headers(headers: &HeaderMap, signed: &[String]) -> String {
    signed
        .iter()
        .map(|name| {
            let mut values: Vec<String> = headers
                .get_all(name.as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
                .collect();
            values.sort();
            format!("{name}:{}\n", values.join(","))
        })
        .collect()
}

/// The six-part canonical request the signature covers.
pub fn canonical_request(req: &SignedRequest, signed: &[String]) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(&req.query),
        canonical_headers(&req.headers, signed),
        signed.join(";"),
        req.payload_sha256
    )
}

/// `ACS3-HMAC-SHA256\n` + hex(SHA256(canonical request)).
pub fn string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// hex(HMAC-SHA256(secret, string_to_sign)); the secret is used as is (no `&`, unlike V1).
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an impossible value anyway.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(string_to_sign.as_bytes());
            hex(&mac.finalize().into_bytes())
        }
        Err(_) => String::from("!"),
    }
}

/// The canonical request with the STS token's value removed, fit for a log line.
fn redacted(canonical: &str) -> String {
    canonical
        .split('\n')
        .map(|line| match line.starts_with("x-acs-security-token:") {
            true => "x-acs-security-token:<redacted>",
            false => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn incomplete(detail: &str) -> ApiError {
    ApiError::new(
        400,
        "IncompleteSignature",
        format!("The request signature does not conform to Aliyun standards. {detail}"),
    )
}

/// Headers a V3 signature must cover: `host`, every `x-acs-*` header sent, and `content-type` if
/// sent -- otherwise a proxy could add or change them without breaking the signature.
fn unsigned_required_header(req: &SignedRequest, signed: &[String]) -> Option<String> {
    let mut required = vec![String::from("host")];
    required.extend(
        req.headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k.starts_with("x-acs-") || k == "content-type"),
    );
    required.into_iter().find(|h| !signed.contains(h))
}

/// The V3 counterpart of `auth::verify`, with the same error codes in the same order where V1 has
/// one: algorithm, timestamp, access key, STS token, signature, then the nonce's presence.
pub fn verify(
    req: &SignedRequest,
    keys: &HashMap<String, Credential>,
    now: i64,
) -> Result<Verified, ApiError> {
    let authz = req
        .header("authorization")
        .and_then(|a| parse_authorization(&a))
        .ok_or_else(|| {
            incomplete("The Authorization header needs Credential, SignedHeaders and Signature.")
        })?;
    if authz.algorithm != ALGORITHM {
        return Err(ApiError::new(
            400,
            "InvalidSignatureMethod",
            format!(
                "Specified signature method is not valid. The simulator verifies {ALGORITHM} only."
            ),
        ));
    }
    let timestamp = auth::check_timestamp("x-acs-date", req.header("x-acs-date").as_deref(), now)?;
    let cred = auth::lookup_key(keys, &authz.credential)?;
    auth::check_security_token(cred, req.header("x-acs-security-token").as_deref())?;
    if let Some(h) = unsigned_required_header(req, &authz.signed_headers) {
        return Err(incomplete(&format!(
            "The header {h:?} must be listed in SignedHeaders."
        )));
    }
    let canonical = canonical_request(req, &authz.signed_headers);
    let sts = string_to_sign(&canonical);
    let given = authz.signature.to_ascii_lowercase();
    if !auth::constant_time_eq(&given, &signature(&cred.secret, &sts)) {
        tracing::debug!(canonical_request = %redacted(&canonical), "V3 signature mismatch");
        return Err(auth::signature_mismatch(&sts));
    }
    let nonce = req
        .header("x-acs-signature-nonce")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| auth::missing("SignatureNonce"))?;
    Ok(Verified {
        access_key_id: authz.credential,
        nonce,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    /// 2026-11-28T04:30:00Z, the `x-acs-date` of every vector.
    const NOW: i64 = 1_795_840_200;

    /// Headers every vector shares, exactly as `tests/sdk/v3_vectors.py` gives them to the SDK.
    const COMMON: [(&str, &str); 7] = [
        ("host", "127.0.0.1:8080"),
        ("x-acs-version", "2014-05-26"),
        ("x-acs-action", "DescribeSecurityGroups"),
        (
            "user-agent",
            "AlibabaCloud (Linux; x86_64) Python/3.11 TeaDSL/2",
        ),
        ("x-acs-date", "2026-11-28T04:30:00Z"),
        ("x-acs-signature-nonce", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("accept", "application/json"),
    ];

    fn request(query: &str, extra: &[(&str, &str)], body: &[u8], authz: &str) -> SignedRequest {
        let mut headers = HeaderMap::new();
        let payload = hex(&Sha256::digest(body));
        let all = COMMON.iter().chain(extra).copied().chain([
            ("x-acs-content-sha256", payload.as_str()),
            ("authorization", authz),
        ]);
        for (k, v) in all {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
                HeaderValue::from_str(v).expect("test header value"),
            );
        }
        let uri: Uri = format!("/?{query}").parse().expect("test uri");
        SignedRequest::new("POST", &uri, headers, body)
    }

    /// Vector "describe": list-valued JSON, a value with space, `*`, `~`, `/`, `é`, `+`, an empty value.
    fn describe() -> SignedRequest {
        request(
            "RegionId=cn-hangzhou&SecurityGroupIds=%5B%22sg-1%22%2C%22sg-2%22%5D&Tag.1.Key=env&Tag.1.Value=prod+a%2Ab~c%2F%C3%A9%2B&NextToken=&MaxResults=10",
            &[],
            b"",
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=228490dd50041afe31d11ac2cff0f18d171b8fcc2552b243c68ee2ef7120f0c1",
        )
    }

    fn sts(token: &str, sig: &str) -> SignedRequest {
        request(
            "RegionId=cn-hangzhou&SecurityGroupId=sg-bp67acfmxazb4ph0001",
            &[("x-acs-accesskey-id", "stsid"), ("x-acs-security-token", token)],
            b"",
            &format!("ACS3-HMAC-SHA256 Credential=stsid,SignedHeaders=accept;host;user-agent;x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version,Signature={sig}"),
        )
    }

    const STS_SIG: &str = "0c9e869df04390c6f87a594e6560c430510155343f85bab36062204826d55faf";
    const FORM_BODY: &[u8] = b"SecurityGroupId=sg-bp67acfmxazb4ph0001&InnerAccessPolicy=Drop";

    fn form(body: &[u8]) -> SignedRequest {
        request(
            "RegionId=cn-hangzhou",
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=5b3216ab6ce80b6536791011364d5e7af10a283475a5e6e76761967134dfa977",
        )
    }

    fn keys() -> HashMap<String, Credential> {
        let mut m = HashMap::new();
        for (id, secret, token) in [
            ("testid", "testsecret", None),
            ("stsid", "stssecret", Some("sts-token-123")),
        ] {
            m.insert(
                id.to_string(),
                Credential {
                    secret: secret.into(),
                    security_token: token.map(String::from),
                    ..Credential::default()
                },
            );
        }
        m
    }

    fn code(req: &SignedRequest, now: i64) -> Option<(u16, String)> {
        verify(req, &keys(), now).err().map(|e| (e.status, e.code))
    }

    #[test]
    fn sdk_vectors_verify() {
        for req in [describe(), sts("sts-token-123", STS_SIG), form(FORM_BODY)] {
            let v = verify(&req, &keys(), NOW);
            assert!(v.is_ok(), "{}: {:?}", req.query, v.err());
        }
        let v = verify(&sts("sts-token-123", STS_SIG), &keys(), NOW).ok();
        assert_eq!(
            v.map(|v| (v.access_key_id, v.nonce, v.timestamp)),
            Some((
                "stsid".into(),
                "0f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
                NOW
            ))
        );
    }

    #[test]
    fn query_is_decoded_from_the_wire_and_reencoded_rfc3986() {
        assert_eq!(
            canonical_query(&describe().query),
            "MaxResults=10&NextToken=&RegionId=cn-hangzhou&SecurityGroupIds=%5B%22sg-1%22%2C%22sg-2%22%5D&Tag.1.Key=env&Tag.1.Value=prod%20a%2Ab~c%2F%C3%A9%2B"
        );
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=1&&a"), "a=&b=1");
    }

    #[test]
    fn repeated_headers_are_trimmed_sorted_and_joined() {
        let mut h = HeaderMap::new();
        h.append("x-acs-meta", HeaderValue::from_static(" b "));
        h.append("x-acs-meta", HeaderValue::from_static("a"));
        let names = vec!["x-acs-meta".to_string(), "host".to_string()];
        assert_eq!(canonical_headers(&h, &names), "x-acs-meta:a,b\nhost:\n");
    }

    #[test]
    fn authorization_header_is_parsed_strictly() {
        let a = parse_authorization(
            "ACS3-HMAC-SHA256 Credential=k, SignedHeaders=Host;x-acs-date ,Signature=ab",
        );
        assert_eq!(
            a,
            Some(Authorization {
                algorithm: ALGORITHM.into(),
                credential: "k".into(),
                signed_headers: vec!["host".into(), "x-acs-date".into()],
                signature: "ab".into(),
            })
        );
        for bad in [
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host",
            "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab",
            "",
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }

    #[test]
    fn any_change_to_a_signed_part_is_refused() {
        let base = describe();
        let mut tampered = Vec::new();
        let mut r = base.clone();
        r.query = r.query.replace("MaxResults=10", "MaxResults=11");
        tampered.push(r);
        let mut r = base.clone();
        r.method = "GET".into();
        tampered.push(r);
        let mut r = base.clone();
        r.headers
            .insert("host", HeaderValue::from_static("127.0.0.1:8081"));
        tampered.push(r);
        let mut r = base.clone();
        r.headers.insert(
            "x-acs-action",
            HeaderValue::from_static("ModifySecurityGroupPolicy"),
        );
        tampered.push(r);
        // The body is covered through its hash even though the client's header still claims the old one.
        tampered.push(form(
            b"SecurityGroupId=sg-bp67acfmxazb4ph0001&InnerAccessPolicy=Accept",
        ));
        for r in tampered {
            assert_eq!(
                code(&r, NOW),
                Some((400, "SignatureDoesNotMatch".into())),
                "{} {}",
                r.method,
                r.query
            );
        }
        // Headers outside SignedHeaders may change freely, as proxies do.
        let mut r = base;
        r.headers
            .insert("accept-encoding", HeaderValue::from_static("gzip"));
        assert_eq!(code(&r, NOW), None);
    }

    #[test]
    fn mismatch_message_carries_the_server_string_to_sign() {
        let mut keys = keys();
        keys.insert(
            "testid".into(),
            Credential {
                secret: "wrong".into(),
                ..Credential::default()
            },
        );
        let req = describe();
        let msg = verify(&req, &keys, NOW)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        let sts = string_to_sign(&canonical_request(
            &req,
            &parse_authorization(&req.header("authorization").unwrap_or_default())
                .map(|a| a.signed_headers)
                .unwrap_or_default(),
        ));
        assert!(sts.starts_with("ACS3-HMAC-SHA256\n") && sts.len() == 17 + 64);
        assert!(
            msg.ends_with(&format!("server string to sign is:{sts}")),
            "{msg}"
        );
    }

    #[test]
    fn gateway_errors_are_reported_in_order() {
        assert_eq!(
            code(&describe(), NOW + auth::CLOCK_SKEW_SECS + 1),
            Some((400, "InvalidTimeStamp.Expired".into()))
        );
        assert_eq!(code(&describe(), NOW - auth::CLOCK_SKEW_SECS), None);
        let mut r = describe();
        r.headers.insert(
            "x-acs-date",
            HeaderValue::from_static("2026-11-28 04:30:00"),
        );
        assert_eq!(code(&r, NOW), Some((400, "IllegalTimestamp".into())));
        r.headers.remove("x-acs-date");
        assert_eq!(code(&r, NOW), Some((400, "MissingTimestamp".into())));
        let mut r = describe();
        let other = r
            .header("authorization")
            .unwrap_or_default()
            .replace("Credential=testid", "Credential=nobody");
        r.headers.insert(
            "authorization",
            HeaderValue::from_str(&other).expect("ascii"),
        );
        assert_eq!(
            code(&r, NOW),
            Some((404, "InvalidAccessKeyId.NotFound".into()))
        );
        let sm3 = other.replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3");
        r.headers
            .insert("authorization", HeaderValue::from_str(&sm3).expect("ascii"));
        assert_eq!(code(&r, NOW), Some((400, "InvalidSignatureMethod".into())));
        r.headers.insert(
            "authorization",
            HeaderValue::from_static("ACS3-HMAC-SHA256 x"),
        );
        assert_eq!(code(&r, NOW), Some((400, "IncompleteSignature".into())));
    }

    #[test]
    fn sts_token_is_required_and_must_match() {
        assert_eq!(
            code(&sts("wrong", STS_SIG), NOW),
            Some((400, "InvalidSecurityToken.MismatchWithAccessKey".into()))
        );
        let mut r = sts("sts-token-123", STS_SIG);
        r.headers.remove("x-acs-security-token");
        assert_eq!(code(&r, NOW), Some((400, "MissingSecurityToken".into())));
    }

    #[test]
    fn every_x_acs_header_and_host_must_be_signed() {
        let mut r = describe();
        r.headers
            .insert("x-acs-extra", HeaderValue::from_static("1"));
        assert_eq!(code(&r, NOW), Some((400, "IncompleteSignature".into())));
        let mut r = describe();
        let fewer = r
            .header("authorization")
            .unwrap_or_default()
            .replace("host;", "");
        r.headers.insert(
            "authorization",
            HeaderValue::from_str(&fewer).expect("ascii"),
        );
        assert_eq!(code(&r, NOW), Some((400, "IncompleteSignature".into())));
    }

    #[test]
    fn nonce_must_be_present_and_is_returned() {
        // The nonce header is signed, so a request without it is signed without it.
        let mut r = describe();
        r.headers.remove("x-acs-signature-nonce");
        let signed: Vec<String> =
            "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-version"
                .split(';')
                .map(String::from)
                .collect();
        let sig = signature(
            "testsecret",
            &string_to_sign(&canonical_request(&r, &signed)),
        );
        let authz = format!(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={},Signature={sig}",
            signed.join(";")
        );
        r.headers.insert(
            "authorization",
            HeaderValue::from_str(&authz).expect("ascii"),
        );
        assert_eq!(code(&r, NOW), Some((400, "MissingSignatureNonce".into())));
    }

    #[test]
    fn the_logged_canonical_request_hides_the_sts_token() {
        let req = sts("sts-token-123", STS_SIG);
        let all: Vec<String> = ["host", "x-acs-security-token"].map(String::from).into();
        let canonical = canonical_request(&req, &all);
        assert!(canonical.contains("sts-token-123"));
        let shown = redacted(&canonical);
        assert!(!shown.contains("sts-token-123") && shown.contains("host:127.0.0.1:8080\n"));
    }

    #[test]
    fn only_acs3_authorization_counts_as_v3() {
        let mut h = HeaderMap::new();
        assert!(!is_v3(&h));
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        assert!(!is_v3(&h));
        h.insert(
            "authorization",
            HeaderValue::from_static("ACS3-HMAC-SHA256 Credential=a"),
        );
        assert!(is_v3(&h));
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
