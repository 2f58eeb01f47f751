//! The sweep lane: the continuous verification. Every tick it reads the few governed groups read
//! longest ago (the schedule is `daemon::sweep`, pure), corrects a drifted one at once within the
//! `--max-changes` window, and folds the results like any pass. It waits while the main lane runs a
//! pass that reads every group (start-up, SIGHUP, retry) and drops what it owed meanwhile, since that
//! pass read everything; before the first pass resolved the folder it reads nothing.
//!
//! A tick costs the policy reads of its groups (and a write and a verifying read for a drifted
//! one): the flags a group's listing gave are kept in its record from the last pass that found it,
//! so the sweep lists only a group never found (a deleted one answers the read with `NotFound`).
//!
//! Pacing adapts to the AIMD limiter without asking it: a tick's reads queue behind the limiter
//! like any request, the next tick starts only when they are done, and what a slowed tick could
//! not read is owed and caught up at most 10% above the pace (`sweep::Pace`), never in a burst.

use super::targeted::Lane;
use super::Runner;
use crate::accounts::Fleet;
use crate::daemon::sweep::Pace;
use crate::model::GroupKey;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl<F: Fleet> Runner<F> {
    /// Runs the sweep until shutdown.
    pub async fn sweep_lane(self: Arc<Self>) {
        let mut pace = Pace::new(
            self.settings.interval,
            self.setup.connect.rate_limits.default_rps,
        );
        let mut last = tokio::time::Instant::now();
        loop {
            let n = self.governed_count().await;
            // Ticks keep their cadence: the wait counts from the last tick's start, so a tick's own
            // reads do not slow the pace (the schedule counts the time that really passed).
            let wait = tokio::time::sleep_until(last + pace.tick(n));
            if self.unless_stopped(wait).await.is_none() {
                return;
            }
            let now = tokio::time::Instant::now();
            let elapsed = now - last;
            last = now;
            if self.full_running.load(Ordering::SeqCst) {
                pace.reset();
                continue;
            }
            let k = pace.take(n, elapsed);
            self.sweep_tick(k).await;
            if self.cancel.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    async fn governed_count(&self) -> usize {
        let st = self.state.lock().await;
        st.effective.as_ref().map_or(0, |d| d.groups.len())
    }

    /// Reads the `k` groups read longest ago, and the groups the `--max-changes` window held back
    /// once it has room again.
    pub(super) async fn sweep_tick(&self, k: usize) {
        let started = Instant::now();
        let st = self.state.lock().await;
        let Some(desired) = st.effective.clone() else {
            return;
        };
        // From the indexes the fold keeps: O(k log N), never a scan of every record.
        let mut keys = st.groups.oldest(k, &desired.groups);
        // As many held groups as the window has room for: more would be held again as a whole.
        let room = self
            .lock_changes()
            .room(Instant::now())
            .unwrap_or(usize::MAX);
        let held: Vec<GroupKey> = st
            .groups
            .window_held()
            .filter(|key| desired.groups.contains_key(*key))
            .filter(|key| !keys.contains(key))
            .take(room)
            .cloned()
            .collect();
        keys.extend(held);
        if keys.is_empty() {
            return;
        }
        let authors: BTreeMap<_, _> = keys
            .iter()
            .filter_map(|key| Some((key.clone(), self.intake.author_of(key)?)))
            .collect();
        self.lane_pass(st, started, desired, &keys, &authors, Lane::Sweep)
            .await;
    }
}
