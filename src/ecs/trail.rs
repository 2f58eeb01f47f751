//! ActionTrail `LookupEvents` (API version 2020-07-06): its names, parameters and lenient response.
//! Signed and sent like the ECS calls (RPC, signature V1, form body) by the same client; see
//! `client::Service`.
//!
//! ActionTrail allows at most [`MAX_RPS`] calls a second per *account*, whatever the region, so every
//! region of an account is paced through one limiter bucket ([`ACCOUNT_WIDE`]).

use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

pub const VERSION: &str = "2020-07-06";
pub const LOOKUP_EVENTS: &str = "LookupEvents";
/// The largest page ActionTrail hands out.
pub const MAX_RESULTS: &str = "50";
/// ActionTrail's documented quota: 2 calls a second per account.
pub const MAX_RPS: f64 = 2.0;
/// The limiter key of every ActionTrail call of one account (the limiter is per account already;
/// this is the "region" half of its (region, action) key, shared by all regions).
pub const ACCOUNT_WIDE: &str = "(all regions)";
/// How long one `LookupEvents` keeps retrying throttled answers (at most the client's own budget).
/// Short: the next poll asks for the same overlapping window anyway, so waiting longer gains nothing.
pub const THROTTLE_BUDGET: Duration = Duration::from_secs(30);

/// One `LookupEvents` query: the events `filter` selects with an `eventTime` in `[start, end]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub filter: Filter,
}

/// Which events a query asks for. ActionTrail takes at most two exact-match conditions and one
/// value each, so many event names cannot be asked for in one query: every ECS write is one
/// query instead of one per name (docs/events.md measures the difference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `EventName` = this name.
    EventName(String),
    /// `ServiceName` = `Ecs` and `EventRW` = `Write`: every ECS write.
    EcsWrites,
}

impl Filter {
    /// The `LookupAttribute.N.Key` / `.Value` pairs.
    pub fn attributes(&self) -> Vec<(&'static str, &str)> {
        match self {
            Filter::EventName(name) => vec![("EventName", name.as_str())],
            Filter::EcsWrites => vec![("ServiceName", "Ecs"), ("EventRW", "Write")],
        }
    }
}

/// One page of events, newest first. Each record is kept as JSON for `events::record`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventPage {
    pub events: Vec<Value>,
    /// `None` on the last page.
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LookupResponse {
    #[serde(default)]
    pub events: Option<Vec<Value>>,
    #[serde(default)]
    pub next_token: Option<String>,
}

impl From<LookupResponse> for EventPage {
    fn from(r: LookupResponse) -> EventPage {
        EventPage {
            events: r.events.unwrap_or_default(),
            next_token: r.next_token.filter(|t| !t.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_without_events_or_with_an_empty_token_is_the_last() {
        let r: LookupResponse =
            serde_json::from_str(r#"{"RequestId":"R","NextToken":"","Events":null}"#).unwrap();
        assert_eq!(EventPage::from(r), EventPage::default());
        let r: LookupResponse = serde_json::from_str(
            r#"{"RequestId":"R","StartTime":"x","NextToken":"t2","Events":[{"eventId":"e"}],"New":1}"#,
        )
        .unwrap();
        let page = EventPage::from(r);
        assert_eq!(page.next_token.as_deref(), Some("t2"));
        assert_eq!(page.events[0]["eventId"], "e");
    }
}
