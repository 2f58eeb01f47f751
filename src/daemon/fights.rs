//! Fights: something else (a console user, a Terraform stack, another tool) keeps changing a group back.
//! sgpolicy counts the corrections of each group; a correction counts towards a streak when it comes
//! within `window` of the previous one (or of the end of its hold). From the `threshold`-th correction
//! of a streak on, the next correction of that group is held back for `hold * 2^(streak - threshold)`,
//! capped at `hold_cap`. While held, the group is still read and reported as drifted, never written.

use super::config::FightPolicy;
use crate::model::GroupKey;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Fight {
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

    /// Records a correction made at `now`; returns the hold when the group is in a fight.
    pub fn corrected(&mut self, key: &GroupKey, now: Instant) -> Option<FightNotice> {
        let p = self.policy;
        let f = self.groups.entry(key.clone()).or_insert(Fight {
            streak: 0,
            last: now,
            held_until: None,
        });
        let within = now.saturating_duration_since(f.released()) <= p.window;
        f.streak = if f.streak > 0 && within {
            f.streak + 1
        } else {
            1
        };
        f.last = now;
        f.held_until = None;
        if f.streak < p.threshold {
            return None;
        }
        let exp = (f.streak - p.threshold).min(20);
        let hold = p.hold.saturating_mul(1u32 << exp).min(p.hold_cap);
        f.held_until = Some(now + hold);
        Some(FightNotice {
            streak: f.streak,
            hold,
        })
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

    #[test]
    fn repeated_corrections_become_a_fight_with_doubling_holds() {
        let mut f = Fights::new(policy());
        let k = GroupKey::new("cn-hangzhou", "sg-1");
        let t0 = Instant::now();
        let min = |m: u64| t0 + Duration::from_secs(60 * m);
        assert_eq!(f.corrected(&k, min(0)), None);
        assert_eq!(f.corrected(&k, min(10)), None);
        assert!(!f.held(&k, min(11)));
        let third = f.corrected(&k, min(20)).unwrap();
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
        assert_eq!(
            f.corrected(&k, min(26)).unwrap().hold,
            Duration::from_secs(600)
        );
        assert_eq!(
            f.corrected(&k, min(37)).unwrap().hold,
            Duration::from_secs(1200)
        );
        assert_eq!(
            f.corrected(&k, min(58)).unwrap().hold,
            Duration::from_secs(1200)
        );
    }

    #[test]
    fn corrections_far_apart_are_not_a_fight() {
        let mut f = Fights::new(policy());
        let k = GroupKey::new("cn-hangzhou", "sg-1");
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(f.corrected(&k, t0 + Duration::from_secs(3601 * i)), None);
        }
        assert!(f.fighting(t0 + Duration::from_secs(3601 * 4)).is_empty());
        f.prune(|_| true, t0 + Duration::from_secs(3601 * 6));
        assert!(f.groups.is_empty());
    }
}
