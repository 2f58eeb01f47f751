//! The whole-pass deadline (`--pass-timeout`): work still unfinished when it passes fails with
//! [`Failure::DeadlineExceeded`], and the next pass retries it.

use super::failure::Failure;
use std::future::Future;
use tokio::time::Instant;

/// Runs `fut` unless the deadline passes first.
pub async fn within<T, E: Into<Failure>>(
    deadline: Option<Instant>,
    action: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, Failure> {
    let result = match deadline {
        None => fut.await,
        Some(d) => match tokio::time::timeout_at(d, fut).await {
            Ok(r) => r,
            Err(_) => return Err(Failure::DeadlineExceeded { action }),
        },
    };
    result.map_err(Into::into)
}

/// Whether the deadline has passed (no new request starts then).
pub fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::EcsError;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn work_past_the_deadline_becomes_a_deadline_failure() {
        let d = Some(Instant::now() + Duration::from_secs(1));
        let ok = within(d, "X", async { Ok::<_, EcsError>(1) }).await;
        assert_eq!(ok, Ok(1));
        assert!(!passed(d));
        let hung = within(d, "X", std::future::pending::<Result<(), EcsError>>()).await;
        assert_eq!(hung, Err(Failure::DeadlineExceeded { action: "X" }));
        assert!(passed(d));
        assert!(within(None, "X", async { Ok::<_, EcsError>(2) })
            .await
            .is_ok());
    }
}
