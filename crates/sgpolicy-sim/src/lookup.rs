//! ActionTrail `LookupEvents` (Version 2020-07-06) on the simulator's endpoint: the events of the
//! caller's account in the request's region, filtered, ordered and paged as the reference (§2) and
//! Alibaba's API page give them.
//!
//! Errors: 400 `InvalidParameterStartTime` / `InvalidParameterEndTime` (malformed, or only one of
//! the two given), 400 `InvalidParameterCombination` (the end not later than the start, or a span
//! over 30 days), 400 `InvalidQueryParameter` (anything else: a `LookupAttribute` beyond N = 2, an
//! unknown key or a key without a value, `MaxResults` outside 0..=50, an unknown `Direction`, a
//! `NextToken` this query did not hand out). A key whose `deniedActions` hold `LookupEvents` gets 403
//! `NoPermission` and throttling is the fault layer's, both before this runs.

use crate::auth::{fmt_time, parse_timestamp, Params};
use crate::handlers::Outcome;
use crate::respond::ApiError;
use crate::trail::{fnv64, StoredEvent, Trail, RETENTION_SECS};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const ACTION: &str = "LookupEvents";
pub const VERSION: &str = "2020-07-06";
/// `MaxResults` at most (the reference: "up to 50 per page").
pub const MAX_RESULTS: usize = 50;
/// A page without `MaxResults` (or with 0); Alibaba's page does not say, its example uses 20.
pub const DEFAULT_RESULTS: usize = 20;
/// Without StartTime and EndTime: the last 7 days.
const DEFAULT_WINDOW_SECS: i64 = 7 * 86_400;
/// One query spans at most 30 days.
const MAX_SPAN_SECS: i64 = 30 * 86_400;
/// The `LookupAttribute.N.Key` values the reference lists, and the record field each matches.
const KEYS: [(&str, &str); 8] = [
    ("EventName", "eventName"),
    ("ServiceName", "serviceName"),
    ("EventRW", "eventRW"),
    ("ResourceType", "resourceType"),
    ("ResourceName", "resourceName"),
    ("User", "user.userName"),
    ("EventAccessKeyId", "user.accessKeyId"),
    ("EventId", "eventId"),
];

fn bad_query(detail: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidQueryParameter",
        format!("The specified query parameter is invalid: {detail}."),
    )
}

fn bad_time(name: &str) -> ApiError {
    ApiError::new(
        400,
        format!("InvalidParameter{name}"),
        format!("The specified {name} is invalid."),
    )
}

fn arg<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// `LookupAttribute.N.Key` / `.Value`, N = 1 or 2: (record field, value) pairs, all of which must
/// match exactly.
fn conditions(p: &Params) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut slots: [(Option<&String>, Option<&String>); 2] = [(None, None), (None, None)];
    for (name, v) in p.range("LookupAttribute.".to_string()..) {
        let Some(rest) = name.strip_prefix("LookupAttribute.") else {
            break;
        };
        let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
        let slot = match n {
            "1" => &mut slots[0],
            "2" => &mut slots[1],
            _ => return Err(bad_query("at most 2 LookupAttribute conditions (N = 1, 2)")),
        };
        match field {
            "Key" => slot.0 = Some(v),
            "Value" => slot.1 = Some(v),
            _ => return Err(bad_query(name)),
        }
    }
    let mut out = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        match slot {
            (None, None) => {}
            (Some(k), Some(v)) if !v.is_empty() => {
                let field = KEYS
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, f)| *f)
                    .ok_or_else(|| bad_query(&format!("LookupAttribute.{}.Key {k:?}", i + 1)))?;
                out.push((field, v.to_string()));
            }
            _ => {
                return Err(bad_query(&format!(
                    "LookupAttribute.{} needs both Key and Value",
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}

/// Where the previous page ended, and which query it belonged to.
#[derive(Serialize, Deserialize)]
struct Cursor {
    account: String,
    region: String,
    query: String,
    time: i64,
    seq: u64,
}

/// Everything but paging identifies a query: its next page must repeat it unchanged.
fn query_digest(p: &Params) -> String {
    let mut parts = vec![
        p.get("StartTime").cloned().unwrap_or_default(),
        p.get("EndTime").cloned().unwrap_or_default(),
        p.get("Direction").cloned().unwrap_or_default(),
    ];
    for (k, v) in p.range("LookupAttribute.".to_string()..) {
        if !k.starts_with("LookupAttribute.") {
            break;
        }
        parts.push(format!("{k}={v}"));
    }
    format!("{:016x}", fnv64(&parts.join("\n")))
}

fn encode_cursor(c: &Cursor) -> String {
    let text = serde_json::to_string(c).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn decode_cursor(token: &str) -> Option<Cursor> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Runs `LookupEvents` for a key of `account` against `region`'s trail at time `now`.
pub fn lookup_events(
    trail: &Trail,
    account: &str,
    region: &str,
    p: &Params,
    request_id: &str,
    now: i64,
) -> Result<Outcome, ApiError> {
    let (start, end) = match (arg(p, "StartTime"), arg(p, "EndTime")) {
        (None, None) => (now - DEFAULT_WINDOW_SECS, now),
        (Some(_), None) => return Err(bad_time("EndTime")),
        (None, Some(_)) => return Err(bad_time("StartTime")),
        (Some(s), Some(e)) => (
            parse_timestamp(s).ok_or_else(|| bad_time("StartTime"))?,
            parse_timestamp(e).ok_or_else(|| bad_time("EndTime"))?,
        ),
    };
    if end <= start {
        return Err(ApiError::new(
            400,
            "InvalidParameterCombination",
            "The end time must be later than the start time.",
        ));
    }
    if end - start > MAX_SPAN_SECS {
        return Err(ApiError::new(
            400,
            "InvalidParameterCombination",
            "The time range of one query cannot exceed 30 days.",
        ));
    }
    let forward = match arg(p, "Direction") {
        None | Some("BACKWARD") => false,
        Some("FORWARD") => true,
        Some(_) => return Err(bad_query("Direction must be FORWARD or BACKWARD")),
    };
    let size = match arg(p, "MaxResults") {
        None => DEFAULT_RESULTS,
        Some(v) => match v.parse::<usize>() {
            Ok(0) => DEFAULT_RESULTS,
            Ok(n) if n <= MAX_RESULTS => n,
            _ => return Err(bad_query("MaxResults must be 1 to 50")),
        },
    };
    let conds = conditions(p)?;
    let digest = query_digest(p);
    let after = match arg(p, "NextToken") {
        None => None,
        Some(t) => match decode_cursor(t) {
            Some(c) if c.account == account && c.region == region && c.query == digest => {
                Some((c.time, c.seq))
            }
            _ => return Err(bad_query("NextToken does not belong to this query")),
        },
    };
    let delay = i64::try_from(trail.config.query_delay_seconds).unwrap_or(i64::MAX);
    let oldest = now - RETENTION_SECS;
    let mut hits: Vec<&StoredEvent> = trail
        .events()
        .filter(|e| {
            e.account == account
                && e.region == region
                && e.time >= start.max(oldest)
                && e.time <= end
                && e.time.saturating_add(delay) <= now
                && conds.iter().all(|(f, v)| e.field(f) == v)
                && after.map_or(true, |c| {
                    if forward {
                        (e.time, e.seq) > c
                    } else {
                        (e.time, e.seq) < c
                    }
                })
        })
        .collect();
    hits.sort_by_key(|e| (e.time, e.seq));
    if !forward {
        hits.reverse();
    }
    let more = hits.len() > size;
    hits.truncate(size);
    let next_token = match (more, hits.last()) {
        (true, Some(last)) => encode_cursor(&Cursor {
            account: account.to_string(),
            region: region.to_string(),
            query: digest,
            time: last.time,
            seq: last.seq,
        }),
        _ => String::new(),
    };
    let events: Vec<Value> = hits.iter().map(|e| e.record.clone()).collect();
    Ok(Outcome::read(
        json!({
            "StartTime": fmt_time(start),
            "EndTime": fmt_time(end),
            "NextToken": next_token,
            "Events": events,
        }),
        request_id,
    ))
}
