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

/// How much faster than `N / interval` the sweep may read while it catches up (after a tick the
/// limiter or a correction slowed down, or a pause): the goal is that no 10-second window reads more
/// than 1.2 × `N / interval`, and 1.1 leaves room for one tick's rounding and a correction's
/// verifying read.
pub const CATCH_UP: f64 = 1.1;

/// How much of the catch-up rate may be read at once after a late tick (or a tick's worth and one
/// group, if more): any window of `w` seconds reads at most [`CATCH_UP`] × `N / interval` × (`w` +
/// this), so a 10-second window at most 1.155 × its share (on an estate small enough that a tick
/// reads about one group, the one group more is what rounding needs).
pub const BURST: Duration = Duration::from_millis(500);

/// The sweep's pace: groups per tick. Two ledgers, both fed by the time that really passed between
/// ticks (so a late tick neither loses its reads nor bursts them):
/// - what is owed accrues at `N / interval` and is never dropped (but by [`Pace::reset`], when a
///   full pass read everything), so the long-run rate is exactly `N / interval`;
/// - what may be read now refills at [`CATCH_UP`] × `N / interval` (never above `--max-rps`) and
///   holds at most [`BURST`]'s worth, so reads owed after a slow tick are caught up smoothly, and no
///   window of any length reads more than that above [`CATCH_UP`] × its share.
#[derive(Clone, Debug)]
pub struct Pace {
    interval: Duration,
    max_rps: f64,
    /// Groups owed but not yet read (fractional).
    owed: f64,
    /// Reads allowed now (fractional): the catch-up ceiling.
    allowance: f64,
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
            owed: 0.0,
            allowance: 0.0,
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

    /// How many of `n` groups to read after `elapsed` since the last tick.
    pub fn take(&mut self, n: usize, elapsed: Duration) -> usize {
        if n == 0 {
            self.reset();
            return 0;
        }
        let rate = n as f64 / self.interval.as_secs_f64();
        let fast = (CATCH_UP * rate).min(self.max_rps);
        let elapsed = elapsed.as_secs_f64();
        // Owing more than every group once is owing every group once.
        self.owed = (self.owed + rate * elapsed).min(n as f64);
        // At least a tick's worth and one group more, or a tick of one group's share could never
        // read the one it owes after late ticks.
        let tick = self.tick(n).as_secs_f64();
        let burst = (fast * BURST.as_secs_f64()).max(fast * tick + 1.0);
        self.allowance = (self.allowance + fast * elapsed).min(burst);
        // The epsilon keeps a tick worth exactly one group from reading 0 then 2 by rounding.
        let k = (self.owed + 1e-9)
            .floor()
            .min((self.allowance + 1e-9).floor())
            .min(n as f64)
            .max(0.0);
        self.owed -= k;
        self.allowance -= k;
        k as usize
    }

    /// A full pass just read every group: nothing is owed.
    pub fn reset(&mut self) {
        self.owed = 0.0;
        self.allowance = 0.0;
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
    fn a_long_gap_is_never_made_up_in_a_burst() {
        let mut pace = Pace::new(HOUR, 20.0);
        // 10 minutes without a tick (the lane resets when a full pass read everything meanwhile).
        let k = pace.take(10_000, Duration::from_secs(600));
        assert!(
            k <= 2,
            "at most half a second's worth at the catch-up rate, got {k}"
        );
    }

    /// The pure schedule run for `secs` seconds over `n` groups: each tick starts `late(i)` after
    /// its wait (its own reads, a correction's write and verifying read, the limiter), as the lane
    /// does. Returns when each tick read, and how many.
    fn run_schedule(
        n: usize,
        interval: Duration,
        secs: f64,
        late: impl Fn(usize) -> Duration,
    ) -> Vec<(f64, usize)> {
        let mut pace = Pace::new(interval, 20.0);
        let (mut now, mut last, mut out) = (0.0, 0.0, Vec::new());
        let mut i = 0;
        while now < secs {
            now += (pace.tick(n) + late(i)).as_secs_f64();
            let k = pace.take(n, Duration::from_secs_f64(now - last));
            last = now;
            out.push((now, k));
            i += 1;
        }
        out
    }

    /// The most reads in any window of `w` seconds (each starting at a tick).
    fn busiest(ticks: &[(f64, usize)], w: f64) -> usize {
        (0..ticks.len())
            .map(|i| {
                let t0 = ticks[i].0;
                ticks[i..]
                    .iter()
                    .take_while(|(t, _)| *t < t0 + w)
                    .map(|(_, k)| k)
                    .sum()
            })
            .max()
            .unwrap_or(0)
    }

    /// What made the busiest 10-s window run 13/s against a goal of 12/s: fractions per tick,
    /// ticks made late by their own reads, a correction's verifying delay now and then, and a stall
    /// behind a throttled limiter. Under each, on the sizes the benchmarks run, no 10-s window reads
    /// more than 1.2 × N / interval, and the reads owed are caught up (the long-run rate holds).
    #[test]
    fn no_ten_second_window_reads_more_than_a_fifth_above_the_pace() {
        let ms = Duration::from_millis;
        let causes: [(&str, &dyn Fn(usize) -> Duration); 4] = [
            ("on time", &|_| Duration::ZERO),
            ("reads of 3 to 40 ms", &|i| ms(3 + (i as u64 * 37) % 38)),
            ("a 400 ms correction every 2 s", &|i| {
                if i % 20 == 7 {
                    ms(400)
                } else {
                    ms(5)
                }
            }),
            ("a 5 s stall at the 100th tick", &|i| {
                if i == 100 {
                    Duration::from_secs(5)
                } else {
                    ms(5)
                }
            }),
        ];
        let sizes = [
            (10_000, HOUR),
            (10_000, Duration::from_secs(900)),
            (10_000, Duration::from_secs(600)),
            (600, Duration::from_secs(60)),
            (60, Duration::from_secs(60)),
        ];
        for (n, interval) in sizes {
            let rate = n as f64 / interval.as_secs_f64();
            for (cause, late) in causes {
                let secs = 200.0;
                let ticks = run_schedule(n, interval, secs, late);
                let worst = busiest(&ticks, 10.0);
                let goal = (1.2 * rate * 10.0).max(rate * 10.0 + 1.0);
                assert!(
                    worst as f64 <= goal,
                    "{n} groups / {interval:?}, {cause}: {worst} reads in 10 s, goal {goal:.1}"
                );
                let read: usize = ticks.iter().map(|(_, k)| k).sum();
                let owed = rate * ticks.last().map_or(0.0, |t| t.0);
                assert!(
                    read as f64 >= owed - 1.5 * rate.max(1.0),
                    "{n} groups / {interval:?}, {cause}: read {read} of {owed:.1} owed"
                );
            }
        }
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
