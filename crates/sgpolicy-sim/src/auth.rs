//! RPC signature V1 verification: the simulator's own canonicaliser, independent of the agent's signer.
//!
//! Written separately from the agent's `sgpolicy::ecs::sign` on purpose (this crate cannot even name
//! it): if both sides shared one implementation, a bug in it would sign and verify consistently and no
//! test would notice. This one is checked against the published vectors only.

use super::respond::ApiError;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::collections::{BTreeMap, HashMap};

/// Request parameters, query and form body merged, already percent-decoded.
pub type Params = BTreeMap<String, String>;

/// How far a request's Timestamp may be from the server clock, as ECS documents (15 minutes).
pub const CLOCK_SKEW_SECS: i64 = 15 * 60;

/// What the simulator knows about one access key. No `Debug`: it holds a secret.
#[derive(Clone, Default)]
pub struct Credential {
    pub secret: String,
    pub security_token: Option<String>,
    /// The account whose resources the key may see and change.
    pub account: String,
    /// Unix seconds after which the key (an STS session) is refused.
    pub expires_at: Option<i64>,
    /// Who ActionTrail says called with this key.
    pub identity: crate::trail::Identity,
    /// Actions the key may not call: 403, after the signature checks.
    pub denied: Vec<String>,
}

/// A request that passed every check except nonce freshness, which needs the mutable nonce store.
#[derive(Clone, Debug)]
pub struct Verified {
    pub access_key_id: String,
    pub nonce: String,
    /// The request's own Timestamp (Unix seconds); the nonce must be remembered past it.
    pub timestamp: i64,
}

/// RFC 3986 unreserved characters stay; every other UTF-8 byte becomes `%XY` (upper-case hex).
/// Hand-rolled (not the `percent-encoding` crate) so it is visibly the reference's rule, byte by byte.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

/// `name=value` pairs of every parameter except `Signature`, encoded, sorted by encoded name, joined
/// with `&`. Empty values stay as `name=`.
pub fn canonical_query(params: &Params) -> String {
    sorted_pairs(
        params
            .iter()
            .filter(|(k, _)| k.as_str() != "Signature")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// Both signature versions' canonical query: every pair percent-encoded (RFC 3986), sorted by
/// encoded name then value, `name=value` joined with `&`.
pub(super) fn sorted_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(String, String)> = pairs
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD&%2F&encode(canonical)`: the canonical string is encoded a second time.
pub fn string_to_sign(method: &str, params: &Params) -> String {
    format!("{method}&%2F&{}", percent_encode(&canonical_query(params)))
}

/// `base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an impossible value anyway.
    match Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()) {
        Ok(mut mac) => {
            mac.update(string_to_sign.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::from("!"),
    }
}

/// Parses exactly `YYYY-MM-DDThh:mm:ssZ` (UTC) into Unix seconds; anything else is `None`.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 {
        return None;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let date =
        chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    let time = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    Some(time.and_utc().timestamp())
}

/// Compares without an early exit, so the time taken says nothing about how much of a guess matched.
pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(super) fn missing(name: &str) -> ApiError {
    ApiError::new(
        400,
        format!("Missing{name}"),
        format!("{name} is mandatory for this action."),
    )
}

/// The timestamp checks both signature versions make: present, well-formed, within the allowed skew.
/// `name` is the parameter or header the client sent it in, for the message.
pub(super) fn check_timestamp(name: &str, value: Option<&str>, now: i64) -> Result<i64, ApiError> {
    let text = value.ok_or_else(|| {
        ApiError::new(
            400,
            "MissingTimestamp",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    })?;
    let timestamp = parse_timestamp(text).ok_or_else(|| {
        ApiError::new(
            400,
            "IllegalTimestamp",
            format!("The input parameter \"{name}\" that is {text:?} is not valid; the format is YYYY-MM-DDThh:mm:ssZ in UTC."),
        )
    })?;
    if (now - timestamp).abs() > CLOCK_SKEW_SECS {
        return Err(ApiError::new(
            400,
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired. Server time is {}.",
                fmt_time(now)
            ),
        ));
    }
    Ok(timestamp)
}

pub(super) fn lookup_key<'a>(
    keys: &'a HashMap<String, Credential>,
    access_key_id: &str,
) -> Result<&'a Credential, ApiError> {
    keys.get(access_key_id).ok_or_else(|| {
        ApiError::new(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )
    })
}

/// STS keys must come with their token; plain keys ignore one.
pub(super) fn check_security_token(cred: &Credential, given: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = &cred.security_token else {
        return Ok(());
    };
    match given {
        None | Some("") => Err(missing("SecurityToken")),
        Some(t) if constant_time_eq(t, expected) => Ok(()),
        Some(_) => Err(ApiError::new(
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )),
    }
}

/// ECS quotes its own string to sign, which clients (the legacy Python SDK) compare with theirs.
pub(super) fn signature_mismatch(string_to_sign: &str) -> ApiError {
    ApiError::new(
        400,
        "SignatureDoesNotMatch",
        format!("Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"),
    )
}

/// Every check ECS's gateway makes before it looks at the action, in the order it reports them.
/// `method` is the real HTTP method, because it is part of the string to sign.
pub fn verify(
    method: &str,
    params: &Params,
    keys: &HashMap<String, Credential>,
    now: i64,
) -> Result<Verified, ApiError> {
    let get = |k: &str| params.get(k).map(String::as_str);
    let access_key_id = get("AccessKeyId").ok_or_else(|| missing("AccessKeyId"))?;
    match get("SignatureMethod") {
        None => return Err(missing("SignatureMethod")),
        Some("HMAC-SHA1") => {}
        Some(_) => {
            return Err(ApiError::new(
                400,
                "InvalidSignatureMethod",
                "Specified signature method is not valid.",
            ))
        }
    }
    match get("SignatureVersion") {
        None => return Err(missing("SignatureVersion")),
        Some("1.0") => {}
        Some(_) => {
            return Err(ApiError::new(
                400,
                "InvalidSignatureVersion",
                "Specified signature version is not valid.",
            ))
        }
    }
    // Older documentation spells it `TimeStamp`; accept either, as the signature covers the name.
    let timestamp = check_timestamp(
        "Timestamp",
        get("Timestamp").or_else(|| get("TimeStamp")),
        now,
    )?;
    let cred = lookup_key(keys, access_key_id)?;
    check_security_token(cred, get("SecurityToken"))?;
    let given = get("Signature").ok_or_else(|| {
        ApiError::new(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    })?;
    let sts = string_to_sign(method, params);
    if !constant_time_eq(given, &signature(&cred.secret, &sts)) {
        return Err(signature_mismatch(&sts));
    }
    let nonce = get("SignatureNonce").ok_or_else(|| missing("SignatureNonce"))?;
    Ok(Verified {
        access_key_id: access_key_id.to_string(),
        nonce: nonce.to_string(),
        timestamp,
    })
}

/// Unix seconds back to the API's timestamp format, for messages and synthesised creation times.
pub fn fmt_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_params(ts_name: &str) -> Params {
        [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            (ts_name, "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn go_params(with_token: bool) -> Params {
        let mut p: Params = [
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
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if with_token {
            p.insert("SecurityToken".into(), "accessKeyStsToken".into());
        }
        p
    }

    #[test]
    fn documented_string_to_sign_is_reproduced() {
        assert_eq!(
            string_to_sign("GET", &doc_params("Timestamp")),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
    }

    #[test]
    fn every_published_vector_matches() {
        let cases = [
            (
                "GET",
                doc_params("Timestamp"),
                "testsecret",
                "OLeaidS1JvxuMvnyHOwuJ+uX5qY=",
            ),
            (
                "POST",
                doc_params("Timestamp"),
                "testsecret",
                "MxbnVAM4w6sft9xjVpe/GCKueuk=",
            ),
            (
                "GET",
                doc_params("TimeStamp"),
                "testsecret",
                "CT9X0VtwR86fNWSnsc6v8YGOjuE=",
            ),
            (
                "GET",
                go_params(false),
                "accessKeySecret",
                "7loPmFjvDnzOVnQeQNj85S6nFGY=",
            ),
            (
                "GET",
                go_params(true),
                "accessKeySecret",
                "5Nxdcler+ihqWqv0Hr2On4PsBf4=",
            ),
        ];
        for (method, params, secret, want) in cases {
            assert_eq!(
                signature(secret, &string_to_sign(method, &params)),
                want,
                "{method} {params:?}"
            );
        }
    }

    #[test]
    fn signature_param_is_excluded_and_encoding_follows_the_reference() {
        let mut p = doc_params("Timestamp");
        let before = canonical_query(&p);
        p.insert("Signature".into(), "whatever".into());
        assert_eq!(canonical_query(&p), before);
        assert_eq!(percent_encode("a b*c~d/é+"), "a%20b%2Ac~d%2F%C3%A9%2B");
    }

    #[test]
    fn timestamps_are_parsed_strictly() {
        assert_eq!(parse_timestamp("2016-02-23T12:46:24Z"), Some(1456231584));
        for bad in [
            "2016-02-23 12:46:24Z",
            "2016-2-23T12:46:24Z",
            "2016-02-30T12:46:24Z",
            "mock date",
            "",
            "2016-02-23T12:46:24+00:00",
            "２016-02-23T12:46:24Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    fn keys() -> HashMap<String, Credential> {
        let mut m = HashMap::new();
        m.insert(
            "testid".into(),
            Credential {
                secret: "testsecret".into(),
                ..Credential::default()
            },
        );
        m.insert(
            "stsid".into(),
            Credential {
                secret: "s".into(),
                security_token: Some("tok".into()),
                ..Credential::default()
            },
        );
        m
    }

    fn signed(mut p: Params, secret: &str) -> Params {
        let sig = signature(secret, &string_to_sign("GET", &p));
        p.insert("Signature".into(), sig);
        p
    }

    #[test]
    fn verify_reports_each_gateway_error() {
        let now = 1456231584;
        let ok = signed(doc_params("Timestamp"), "testsecret");
        assert!(verify("GET", &ok, &keys(), now).is_ok());
        let code = |p: &Params, m: &str, now: i64| {
            verify(m, p, &keys(), now).err().map(|e| (e.status, e.code))
        };
        assert_eq!(
            code(&ok, "POST", now),
            Some((400, "SignatureDoesNotMatch".into()))
        );
        assert_eq!(
            code(&ok, "GET", now + 901),
            Some((400, "InvalidTimeStamp.Expired".into()))
        );
        let mut p = ok.clone();
        p.remove("Signature");
        assert_eq!(
            code(&p, "GET", now),
            Some((400, "IncompleteSignature".into()))
        );
        let mut p = ok.clone();
        p.remove("Timestamp");
        assert_eq!(code(&p, "GET", now), Some((400, "MissingTimestamp".into())));
        let mut p = ok.clone();
        p.insert("Timestamp".into(), "yesterday".into());
        assert_eq!(code(&p, "GET", now), Some((400, "IllegalTimestamp".into())));
        let mut p = ok.clone();
        p.insert("AccessKeyId".into(), "nobody".into());
        assert_eq!(
            code(&p, "GET", now),
            Some((404, "InvalidAccessKeyId.NotFound".into()))
        );
        let mut p = doc_params("Timestamp");
        p.insert("AccessKeyId".into(), "stsid".into());
        assert_eq!(
            code(&signed(p.clone(), "s"), "GET", now),
            Some((400, "MissingSecurityToken".into()))
        );
        p.insert("SecurityToken".into(), "wrong".into());
        assert_eq!(
            code(&signed(p.clone(), "s"), "GET", now),
            Some((400, "InvalidSecurityToken.MismatchWithAccessKey".into()))
        );
        p.insert("SecurityToken".into(), "tok".into());
        assert!(verify("GET", &signed(p, "s"), &keys(), now).is_ok());
    }

    #[test]
    fn mismatch_message_carries_the_server_string_to_sign() {
        let now = 1456231584;
        let p = signed(doc_params("Timestamp"), "wrongsecret");
        let e = verify("GET", &p, &keys(), now)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.ends_with(&format!(
            "server string to sign is:{}",
            string_to_sign("GET", &p)
        )));
    }
}
