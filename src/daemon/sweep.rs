//! The continuous verification's schedule, pure: which groups the sweep reads next and at what pace,
//! and the sliding window that bounds the corrections the sweep and the targeted lane make.
//!
//! Why a sweep and not a periodic full pass: a full pass reads every group in a burst at the full
//! `--max-rps`, competing with the account's other callers (ECS counts quotas per account, region
//! and action across all of them), and writes only after all its reads, so a lost event is
//! corrected within `interval + 2 × pass`. The sweep reads `N / interval` groups per second, the
//! least recently read first, and corrects each at once, so a lost event is corrected within
//! `--interval` plus one tick and one read.
//!
//! Why oldest first gives the bound: a group just read is the youngest, so it is not read again
//! before every other group has been; N consecutive reads therefore cover all N groups, and at the
//! pace of `N / interval` they take one `--interval`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The sweep wakes at least this often, reading the groups that fell due since the last tick: a
/// 10,000-group estate at `--interval 1h` reads about 3 groups per tick, never a burst.
pub const MAX_TICK: Duration = Duration::from_secs(1);

/// The sweep wakes at most this often: a tick costs a scan of the governed groups' records, so a
/// large estate reads a few groups per tick rather than one per millisecond.
pub const MIN_TICK: Duration = Duration::from_millis(100);

/// How far `sgpolicy_oldest_verification_age_seconds` may exceed `--interval` while the sweep keeps
/// up (the limiter not throttling): one tick, plus the read of one tick's groups.
pub const AGE_MARGIN: Duration = Duration::from_secs(5);

/// The sweep's pace: groups per tick, with the fraction carried over so the long-run rate is
/// exactly `N / interval`.
#[derive(Clone, Debug)]
pub struct Pace {
    interval: Duration,
    max_rps: f64,
    /// Groups owed but not yet read (fractional).
    credit: f64,
}

impl Pace {
    /// `max_rps` is the `--max-rps` ceiling: the sweep never asks for more, even when it fell behind.
    pub fn new(interval: Duration, max_rps: f64) -> Pace {
        Pace {
            interval: interval.max(Duration::from_millis(1)),
            max_rps: if max_rps > 0.0 {
                max_rps
            } else {
                f64::INFINITY
            },
            credit: 0.0,
        }
    }

    /// How long to wait between ticks for `n` governed groups: one group's share of the interval,
    /// within [`MIN_TICK`] and [`MAX_TICK`], and at least one request's share of `--max-rps` (so
    /// one group per tick never exceeds it).
    pub fn tick(&self, n: usize) -> Duration {
        if n == 0 {
            return MAX_TICK;
        }
        let floor = Duration::from_secs_f64((1.0 / self.max_rps).min(1.0)).max(MIN_TICK);
        (self.interval / n.min(u32::MAX as usize) as u32).clamp(floor, MAX_TICK)
    }

    /// How many of `n` groups to read after `elapsed` since the last tick. The owed fraction carries
    /// over; what exceeds two ticks' worth (a pause while a full pass read everything, a read the
    /// limiter slowed down) is dropped rather than read in a burst, and `--max-rps` caps the rest.
    pub fn take(&mut self, n: usize, elapsed: Duration) -> usize {
        if n == 0 {
            self.credit = 0.0;
            return 0;
        }
        let rate = n as f64 / self.interval.as_secs_f64();
        let per_tick = rate * self.tick(n).as_secs_f64();
        self.credit += rate * elapsed.as_secs_f64();
        self.credit = self.credit.min((2.0 * per_tick).max(1.0));
        let ceiling = (self.max_rps * elapsed.max(self.tick(n)).as_secs_f64()).max(1.0);
        // The epsilon keeps a tick worth exactly one group from reading 0 then 2 by rounding.
        let k = (self.credit + 1e-9).floor().min(ceiling).min(n as f64);
        self.credit -= k;
        k as usize
    }

    /// A full pass just read every group: nothing is owed.
    pub fn reset(&mut self) {
        self.credit = 0.0;
    }
}

/// The `k` groups read longest ago, oldest first; a group never read comes before any read one.
pub fn oldest<K: Clone + Ord>(
    groups: impl IntoIterator<Item = (K, Option<Instant>)>,
    k: usize,
) -> Vec<K> {
    let mut all: Vec<(Option<Instant>, K)> = groups.into_iter().map(|(g, t)| (t, g)).collect();
    if k == 0 || all.is_empty() {
        return Vec::new();
    }
    let k = k.min(all.len());
    if k < all.len() {
        all.select_nth_unstable(k - 1);
        all.truncate(k);
    }
    all.sort();
    all.into_iter().map(|(_, g)| g).collect()
}

/// Whether a group last read at `verified` is due for the interval pass that runs beside the sweep
/// (which only lists selectors and reads what the sweep has not: a group never read, or one the
/// sweep fell behind on).
pub fn stale(verified: Option<Instant>, now: Instant, interval: Duration) -> bool {
    verified.map_or(true, |t| now.saturating_duration_since(t) >= interval)
}

/// `--max-changes N` over time, for the corrections of the sweep and the targeted lane: at most N in
/// any sliding window of one `--interval`. A lane reserves the room before its pass (so two lanes
/// running at once cannot both spend it) and settles what it wrote after.
#[derive(Clone, Debug)]
pub struct ChangeWindow {
    max: Option<usize>,
    window: Duration,
    made: VecDeque<Instant>,
    reserved: usize,
}

impl ChangeWindow {
    /// `max: None` (no `--max-changes` cap): every correction is allowed.
    pub fn new(max: Option<usize>, window: Duration) -> ChangeWindow {
        ChangeWindow {
            max,
            window,
            made: VecDeque::new(),
            reserved: 0,
        }
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&t) = self.made.front() {
            if now.saturating_duration_since(t) >= self.window {
                self.made.pop_front();
            } else {
                break;
            }
        }
    }

    /// The corrections a pass starting `now` may make (`None`: no cap), reserved until [`settle`].
    ///
    /// [`settle`]: ChangeWindow::settle
    pub fn reserve(&mut self, now: Instant) -> Option<usize> {
        let max = self.max?;
        self.forget_before(now);
        let room = max.saturating_sub(self.made.len() + self.reserved);
        self.reserved += room;
        Some(room)
    }

    /// The pass that reserved `reserved` made `made` corrections, at `now`.
    pub fn settle(&mut self, now: Instant, reserved: Option<usize>, made: usize) {
        self.reserved = self.reserved.saturating_sub(reserved.unwrap_or(0));
        self.made.extend(std::iter::repeat(now).take(made));
    }

    /// The corrections a pass starting `now` could make, without reserving them (`None`: no cap).
    pub fn room(&mut self, now: Instant) -> Option<usize> {
        let max = self.max?;
        self.forget_before(now);
        Some(max.saturating_sub(self.made.len() + self.reserved))
    }

    /// When the window next has room, if it is full now (for the log line of a held correction).
    pub fn room_at(&mut self, now: Instant) -> Option<Instant> {
        let max = self.max?;
        self.forget_before(now);
        if self.made.len() + self.reserved < max {
            return None;
        }
        self.made.front().map(|t| *t + self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn ten_thousand_groups_an_hour_are_read_at_their_share_of_the_interval_each_tick() {
        let mut pace = Pace::new(HOUR, 20.0);
        assert_eq!(pace.tick(10_000), Duration::from_millis(360));
        let tick = pace.tick(10_000);
        let read: usize = (0..10_000).map(|_| pace.take(10_000, tick)).sum();
        assert_eq!(read, 10_000, "one interval of ticks reads every group once");
    }

    #[test]
    fn a_large_estate_reads_a_few_groups_per_tick_and_carries_the_fraction() {
        // 100,000 groups an hour: 27.78 per second, 2.78 per tick of 100 ms.
        let mut pace = Pace::new(HOUR, 100.0);
        assert_eq!(pace.tick(100_000), MIN_TICK);
        let per_tick: Vec<usize> = (0..90).map(|_| pace.take(100_000, MIN_TICK)).collect();
        assert!(per_tick.iter().all(|k| *k == 2 || *k == 3), "{per_tick:?}");
        assert_eq!(per_tick.iter().sum::<usize>(), 250, "9 s at 27.78/s");
    }

    #[test]
    fn a_small_estate_reads_one_group_per_tick_at_most_once_a_second() {
        let pace = Pace::new(HOUR, 20.0);
        assert_eq!(pace.tick(60), Duration::from_secs(1));
        assert_eq!(pace.tick(36_000), MIN_TICK);
    }

    #[test]
    fn time_paused_by_a_full_pass_is_not_made_up_in_a_burst() {
        let mut pace = Pace::new(HOUR, 20.0);
        // 10 minutes without a tick (a full pass read everything meanwhile).
        let k = pace.take(10_000, Duration::from_secs(600));
        assert!(k <= 2, "at most two ticks' worth, got {k}");
    }

    #[test]
    fn the_pace_never_exceeds_max_rps_when_the_interval_asks_for_more() {
        // 10,000 groups in one minute would be 167/s; --max-rps 20 caps a one-second tick at 20.
        let mut pace = Pace::new(Duration::from_secs(60), 20.0);
        let tick = pace.tick(10_000);
        let k = pace.take(10_000, tick);
        assert!(
            k as f64 <= 20.0 * tick.as_secs_f64().max(1.0 / 20.0) + 1.0,
            "{k}"
        );
        let mut pace = Pace::new(Duration::from_secs(60), 20.0);
        let total: usize = (0..10).map(|_| pace.take(10_000, MAX_TICK)).sum();
        assert!(total <= 200, "ten seconds at most 20/s, got {total}");
    }

    #[test]
    fn no_groups_read_nothing_and_owe_nothing() {
        let mut pace = Pace::new(HOUR, 20.0);
        assert_eq!(pace.take(0, HOUR), 0);
        assert_eq!(pace.tick(0), MAX_TICK);
    }

    #[test]
    fn the_oldest_read_come_first_and_never_read_before_all() {
        let t0 = Instant::now();
        let at = |s| Some(t0 + Duration::from_secs(s));
        let groups = vec![("c", at(30)), ("a", at(10)), ("new", None), ("b", at(20))];
        assert_eq!(oldest(groups.clone(), 2), ["new", "a"]);
        assert_eq!(oldest(groups.clone(), 9), ["new", "a", "b", "c"]);
        assert!(oldest(groups, 0).is_empty());
    }

    #[test]
    fn reading_oldest_first_at_the_pace_keeps_every_group_younger_than_the_interval_and_a_tick() {
        // Simulated: 50 groups, read all at once at start-up, then swept for three intervals.
        let interval = Duration::from_secs(100);
        let t0 = Instant::now();
        let mut last: Vec<Option<Instant>> = vec![Some(t0); 50];
        let mut pace = Pace::new(interval, 20.0);
        let tick = pace.tick(50);
        let mut now = t0;
        let mut worst = Duration::ZERO;
        while now < t0 + interval * 3 {
            now += tick;
            let k = pace.take(50, tick);
            let due = oldest(last.iter().copied().enumerate(), k);
            for i in due {
                last[i] = Some(now);
            }
            for t in last.iter().flatten() {
                worst = worst.max(now - *t);
            }
        }
        assert!(worst <= interval + tick, "{worst:?}");
    }

    #[test]
    fn a_stale_group_is_one_never_read_or_read_an_interval_ago() {
        let t0 = Instant::now();
        let iv = Duration::from_secs(60);
        assert!(stale(None, t0, iv));
        assert!(stale(Some(t0), t0 + iv, iv));
        assert!(!stale(Some(t0), t0 + iv - Duration::from_secs(1), iv));
    }

    #[test]
    fn max_changes_bounds_corrections_in_any_sliding_interval() {
        let t0 = Instant::now();
        let iv = Duration::from_secs(60);
        let mut w = ChangeWindow::new(Some(3), iv);
        assert_eq!(w.reserve(t0), Some(3));
        w.settle(t0, Some(3), 2);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(w.reserve(t1), Some(1), "two of three spent in the window");
        w.settle(t1, Some(1), 1);
        assert_eq!(w.reserve(t1), Some(0), "the window is full");
        w.settle(t1, Some(0), 0);
        assert_eq!(
            w.room_at(t1),
            Some(t0 + iv),
            "room again when the first two age out"
        );
        assert_eq!(w.reserve(t0 + iv), Some(2), "the first two left the window");
    }

    #[test]
    fn two_lanes_reserving_at_once_cannot_both_spend_the_room() {
        let t0 = Instant::now();
        let mut w = ChangeWindow::new(Some(2), Duration::from_secs(60));
        let sweep = w.reserve(t0);
        let targeted = w.reserve(t0);
        assert_eq!((sweep, targeted), (Some(2), Some(0)));
        w.settle(t0, sweep, 0);
        assert_eq!(w.reserve(t0), Some(2), "unused room is given back");
    }

    #[test]
    fn without_a_cap_every_correction_is_allowed() {
        let mut w = ChangeWindow::new(None, Duration::from_secs(60));
        assert_eq!(w.reserve(Instant::now()), None);
        assert_eq!(w.room_at(Instant::now()), None);
    }
}
