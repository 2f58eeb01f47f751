//! Placeholder until the poller branch lands.
use crate::accounts::Clients;
use crate::model::{AccountRef, Bucket};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// What the poller covers: the (account, region)s with governed groups and the roles to reach them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub buckets: BTreeSet<Bucket>,
    pub roles: BTreeMap<String, AccountRef>,
}

pub async fn run(
    _clients: Arc<Clients>,
    _targets: tokio::sync::watch::Receiver<Arc<Targets>>,
    _every: Duration,
    _lookback: Duration,
    _sink: tokio::sync::mpsc::Sender<super::Heard>,
    _status: Arc<super::Status>,
) {
}
