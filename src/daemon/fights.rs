//! Fights: something else (a console user, a Terraform stack, another tool) keeps changing a group back.
//! sgpolicy counts, per group, the corrections that *restore* what the previous correction set: the
//! declaration did not change, yet the cloud moved away from it again. The first convergence of a group
//! and a write for a new desired value (a team iterating on a policy in Git) restore nothing, so they
//! start a streak at zero instead of growing it. A restoration counts when it comes within `window` of
//! the previous correction (or of the end of its hold). From the `threshold`-th restoration of a streak
//! on, the next correction of that group is held back for `hold * 2^(streak - threshold)`, capped at
//! `hold_cap`. While held, the group is still read and reported as drifted, never written.

use super::settings::FightPolicy;
use crate::model::{GroupKey, Policy};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Fight {
    /// What the last correction set; only a correction to the same value restores it.
    set: Policy,
    /// Restorations in a row.
    streak: u32,
    last: Instant,
    held_until: Option<Instant>,
}

impl Fight {
    /// When the group became free to be corrected again.
    fn released(&self) -> Instant {
        self.held_until.map_or(self.last, |h| h.max(self.last))
    }
}

/// A fight that has just started or grown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FightNotice {
    pub streak: u32,
    pub hold: Duration,
}

#[derive(Debug)]
pub struct Fights {
    policy: FightPolicy,
    groups: BTreeMap<GroupKey, Fight>,
}

impl Fights {
    pub fn new(policy: FightPolicy) -> Fights {
        Fights {
            policy,
            groups: BTreeMap::new(),
        }
    }

    /// Whether corrections of `key` are on hold at `now`.
    pub fn held(&self, key: &GroupKey, now: Instant) -> bool {
        self.groups
            .get(key)
            .and_then(|f| f.held_until)
            .is_some_and(|until| now < until)
    }

    /// Records a correction to `to` made at `now`; returns the hold when the group is in a fight.
    pub fn corrected(&mut self, key: &GroupKey, to: Policy, now: Instant) -> Option<FightNotice> {
        let p = self.policy;
        let streak = match self.groups.get(key) {
            Some(prev)
                if prev.set == to && now.saturating_duration_since(prev.released()) <= p.window =>
            {
                prev.streak + 1
            }
            // The first correction, a new desired value, or a streak gone cold.
            _ => 0,
        };
        // From the threshold on, each restoration holds the next correction back, twice as long.
        let hold = (streak >= p.threshold).then(|| {
            let exp = (streak - p.threshold).min(20);
            p.hold.saturating_mul(1u32 << exp).min(p.hold_cap)
        });
        self.groups.insert(
            key.clone(),
            Fight {
                set: to,
                streak,
                last: now,
                held_until: hold.map(|h| now + h),
            },
        );
        let hold = hold?;
        Some(FightNotice { streak, hold })
    }

    /// Groups currently in a fight, with the hold left on each (zero once it has expired but the
    /// streak is still live).
    pub fn fighting(&self, now: Instant) -> Vec<(&GroupKey, Duration)> {
        self.groups
            .iter()
            .filter(|(_, f)| {
                f.streak >= self.policy.threshold
                    && now.saturating_duration_since(f.released()) <= self.policy.window
            })
            .map(|(k, f)| {
                (
                    k,
                    f.held_until
                        .map_or(Duration::ZERO, |h| h.saturating_duration_since(now)),
                )
            })
            .collect()
    }

    /// Forgets groups no longer declared and streaks that have gone cold.
    pub fn prune(&mut self, declared: impl Fn(&GroupKey) -> bool, now: Instant) {
        let window = self.policy.window;
        self.groups
            .retain(|k, f| declared(k) && now.saturating_duration_since(f.released()) <= window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FightPolicy {
        FightPolicy {
            threshold: 3,
            window: Duration::from_secs(3600),
            hold: Duration::from_secs(300),
            hold_cap: Duration::from_secs(1200),
        }
    }

    fn sg1() -> GroupKey {
        GroupKey::new("cn-hangzhou", "sg-1")
    }

    #[test]
    fn repeated_restorations_become_a_fight_with_doubling_holds() {
        let mut f = Fights::new(policy());
        let k = sg1();
        let t0 = Instant::now();
        let min = |m: u64| t0 + Duration::from_secs(60 * m);
        // The first convergence restores nothing; two restorations are not yet a fight.
        assert_eq!(f.corrected(&k, Policy::Drop, min(0)), None);
        assert_eq!(f.corrected(&k, Policy::Drop, min(5)), None);
        assert_eq!(f.corrected(&k, Policy::Drop, min(10)), None);
        assert!(!f.held(&k, min(11)));
        let third = f.corrected(&k, Policy::Drop, min(20)).unwrap();
        assert_eq!(
            third,
            FightNotice {
                streak: 3,
                hold: Duration::from_secs(300)
            }
        );
        assert!(f.held(&k, min(24)));
        assert!(!f.held(&k, min(25)));
        assert_eq!(f.fighting(min(24)), [(&k, Duration::from_secs(60))]);
        // Corrected again just after the hold: the hold doubles, then hits the cap.
        let hold = |f: &mut Fights, m| f.corrected(&k, Policy::Drop, min(m)).unwrap().hold;
        assert_eq!(hold(&mut f, 26), Duration::from_secs(600));
        assert_eq!(hold(&mut f, 37), Duration::from_secs(1200));
        assert_eq!(hold(&mut f, 58), Duration::from_secs(1200));
    }

    #[test]
    fn edits_of_the_desired_value_in_git_are_never_a_fight() {
        let mut f = Fights::new(policy());
        let k = sg1();
        let t0 = Instant::now();
        // Start-up to Drop, an edit to Accept, an edit back to Drop, and so on: each write sets a new
        // desired value, so nothing was changed back.
        for (i, to) in [
            Policy::Drop,
            Policy::Accept,
            Policy::Drop,
            Policy::Accept,
            Policy::Drop,
        ]
        .into_iter()
        .enumerate()
        {
            let at = t0 + Duration::from_secs(15 * i as u64);
            assert_eq!(f.corrected(&k, to, at), None, "write {i}");
            assert!(!f.held(&k, at));
        }
        assert!(f.fighting(t0 + Duration::from_secs(90)).is_empty());
    }

    #[test]
    fn a_new_desired_value_starts_the_streak_over() {
        let mut f = Fights::new(policy());
        let k = sg1();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        f.corrected(&k, Policy::Drop, s(0));
        f.corrected(&k, Policy::Drop, s(1));
        f.corrected(&k, Policy::Drop, s(2));
        // Two restorations of Drop, then the declaration changes: Accept's streak starts at zero.
        assert_eq!(f.corrected(&k, Policy::Accept, s(3)), None);
        assert_eq!(f.corrected(&k, Policy::Accept, s(4)), None);
        assert_eq!(f.corrected(&k, Policy::Accept, s(5)), None);
        assert_eq!(
            f.corrected(&k, Policy::Accept, s(6)).map(|n| n.streak),
            Some(3)
        );
    }

    #[test]
    fn corrections_far_apart_are_not_a_fight() {
        let mut f = Fights::new(policy());
        let k = sg1();
        let t0 = Instant::now();
        for i in 0..5 {
            let at = t0 + Duration::from_secs(3601 * i);
            assert_eq!(f.corrected(&k, Policy::Drop, at), None);
        }
        assert!(f.fighting(t0 + Duration::from_secs(3601 * 4)).is_empty());
        f.prune(|_| true, t0 + Duration::from_secs(3601 * 6));
        assert!(f.groups.is_empty());
    }
}
