//! Scheduling helpers for a pass: the order work is started in, and the whole-pass deadline.
//!
//! Each (region, action) has its own rate limit, so a pass is fastest when every region's bucket is
//! busy at once. Work is therefore started round-robin across regions: with the work sorted by region,
//! the first `--concurrency` tasks would all wait on one region's bucket while the others sat idle.

use crate::ecs::ApiError;
use std::collections::BTreeMap;
use std::future::Future;
use tokio::time::Instant;

/// Reorders `items` so consecutive items come from different quota buckets, (account, region)
/// pairs: round-robin, buckets in sorted order, each bucket's items in their original order. ECS
/// quotas (and the client's rate limiters) are per account and region, so a pass that worked through
/// one bucket at a time would fill every in-flight slot with requests waiting on that bucket's
/// limiter while the others sat idle.
pub fn interleave_by_bucket<T>(items: Vec<T>, bucket: impl Fn(&T) -> (&str, &str)) -> Vec<T> {
    let mut queues: BTreeMap<(String, String), std::collections::VecDeque<T>> = BTreeMap::new();
    for item in items {
        let (account, region) = bucket(&item);
        queues
            .entry((account.to_string(), region.to_string()))
            .or_default()
            .push_back(item);
    }
    let mut out = Vec::with_capacity(queues.values().map(|q| q.len()).sum());
    loop {
        let mut any = false;
        for q in queues.values_mut() {
            if let Some(item) = q.pop_front() {
                out.push(item);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// The error every group still unfinished at the pass deadline reports.
pub fn deadline_error(action: &'static str) -> ApiError {
    ApiError::transport(
        action,
        "PassDeadlineExceeded",
        "the pass deadline (--pass-timeout) passed before this group was done; the next pass will retry it",
    )
}

/// Runs `fut` unless the deadline passes first.
pub async fn within<T>(
    deadline: Option<Instant>,
    action: &'static str,
    fut: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match deadline {
        None => fut.await,
        Some(d) => match tokio::time::timeout_at(d, fut).await {
            Ok(r) => r,
            Err(_) => Err(deadline_error(action)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn accounts_and_regions_are_separate_buckets() {
        let items = vec![("x", "a", 1), ("x", "a", 2), ("y", "a", 1), ("y", "a", 2)];
        let out = interleave_by_bucket(items, |i| (i.0, i.1));
        assert_eq!(
            out,
            [("x", "a", 1), ("y", "a", 1), ("x", "a", 2), ("y", "a", 2)]
        );
    }

    #[test]
    fn regions_take_turns_and_keep_their_order() {
        let items = vec![("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("c", 2)];
        let out = interleave_by_bucket(items, |i| ("", i.0));
        assert_eq!(
            out,
            [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("c", 2), ("a", 3)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_deadline_becomes_a_deadline_error() {
        let d = Some(Instant::now() + Duration::from_secs(1));
        let ok = within(d, "X", async { Ok::<_, ApiError>(1) }).await;
        assert_eq!(ok, Ok(1));
        let hung = within(d, "X", std::future::pending::<Result<(), ApiError>>()).await;
        assert_eq!(hung.unwrap_err().code, "PassDeadlineExceeded");
        assert!(within(None, "X", async { Ok::<_, ApiError>(2) })
            .await
            .is_ok());
    }
}

/// Parses a duration such as `30m`, `90s`, `1h`, `1500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 1h or 1500ms"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || secs > 7.0 * 24.0 * 3600.0 {
        return Err(format!("{text:?} is longer than a week"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["", "s", "5x", "-1s", "1e9h", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
