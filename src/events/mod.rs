//! ActionTrail events as triggers: what a record says happened to a group, and the two ways records
//! arrive — pulled with `LookupEvents` ([`poller`]) and pushed by EventBridge ([`receiver`]).
//!
//! An event never decides anything. It names (account, region, group) and its author; the daemon
//! turns a governed group's event into a *targeted* pass that reads the group now and plans, writes
//! and verifies it exactly like any other pass. Events of failed calls, of groups nobody governs and
//! sgpolicy's own writes cause no read. Because events can be late, repeated or lost, the full resync
//! stays as the backstop.
//!
//! This module knows nothing of the daemon: it parses, deduplicates and hands [`Heard`] values to a
//! channel the daemon owns.

pub mod dedup;
pub mod poller;
pub mod receiver;
pub mod record;
pub mod status;

pub use record::{ActorType, Author, Change, EventType, Ignored};
pub use status::Status;

use std::net::SocketAddr;
use std::time::Duration;

/// Where an event came from: the label of the event metrics, and how its account is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// `LookupEvents`: the poller asked one account's client, so the account is the poller's.
    Pull,
    /// EventBridge `POST /events`: the account is what the envelope names.
    Push,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Pull => "pull",
            Via::Push => "push",
        }
    }
}

/// One parsed record, with how it arrived. For a pull, `account` is the policy folder's account id of
/// the client that read it (empty: the chain's own); for a push it is `None` and the daemon finds the
/// group by region and id (security group ids are unique across accounts in Alibaba Cloud).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    pub change: Change,
    pub via: Via,
    pub account: Option<String>,
}

/// Default time between `LookupEvents` polls of each (account, region).
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);
/// Shortest allowed poll interval: ActionTrail asks callers not to call it frequently.
pub const MIN_POLL: Duration = Duration::from_secs(10);
/// How far back every poll looks. Events become queryable late (the reference speaks of about ten
/// minutes, unconfirmed), so each poll asks for the whole window and the `eventId`s already seen are
/// dropped; an event that becomes queryable later than this is left to the backstop resync.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(20 * 60);
/// Shortest accepted push token: anyone holding it can make the daemon read groups, so it must not
/// be guessable (`head -c 32 /dev/urandom | base64` gives 44 characters).
pub const MIN_TOKEN_BYTES: usize = 16;
/// Largest accepted push body (the 256 KiB).
pub const MAX_PUSH_BODY: usize = 256 * 1024;

/// The events settings of a daemon, validated by the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSettings {
    /// `--events-poll`: `None` switches polling off (`0`).
    pub poll: Option<Duration>,
    pub lookback: Duration,
    /// `--events-addr` with the token from `--events-token-file`.
    pub receiver: Option<ReceiverSettings>,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            poll: Some(DEFAULT_POLL),
            lookback: DEFAULT_LOOKBACK,
            receiver: None,
        }
    }
}

impl EventSettings {
    /// Whether any event source is on (the backstop's default interval depends on it).
    pub fn enabled(&self) -> bool {
        self.poll.is_some() || self.receiver.is_some()
    }
}

/// The push receiver's address and bearer token (`Secret` keeps the token out of `Debug`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverSettings {
    pub addr: SocketAddr,
    pub token: crate::ecs::credentials::Secret,
}
