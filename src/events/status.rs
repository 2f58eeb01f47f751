//! Placeholder until the poller/receiver branch lands (its status.rs replaces this file).
use super::Via;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Status {
    counts: Mutex<BTreeMap<(Via, &'static str), u64>>,
    unavailable: Mutex<Option<String>>,
}

impl Status {
    pub fn new(_pull: bool, _push: bool) -> Status {
        Status::default()
    }
    pub fn record(&self, via: Via, result: &'static str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry((via, result))
            .or_default() += 1;
    }
    pub fn counts(&self) -> Vec<((Via, &'static str), u64)> {
        self.counts
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
    pub fn unavailable(&self) -> Option<String> {
        self.unavailable.lock().unwrap().clone()
    }
    pub fn availability(&self) -> Vec<(Via, bool)> {
        Vec::new()
    }
    pub fn lookups(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
