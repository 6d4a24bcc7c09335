//! Waiting for hardware to reach a state: read, back off, read again, until
//! the state is right or the deadline passes. Shared by the BMC drivers.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Back-off between reads: starts at `first`, doubles up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Calls `read` until its result satisfies `done`, or `deadline` passes.
/// A failed read is retried like an unfinished one. On timeout the last
/// read's result is returned, for the caller's error message.
pub async fn until<S, E, F, Fut>(
    deadline: Instant,
    backoff: Backoff,
    mut read: F,
    done: impl Fn(&S) -> bool,
) -> Result<(), Result<S, E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, E>>,
{
    let mut interval = backoff.first;
    loop {
        let last = read().await;
        if matches!(&last, Ok(state) if done(state)) {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(last);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Backoff =
        Backoff { first: Duration::from_millis(1), max: Duration::from_millis(4) };

    #[tokio::test]
    async fn stops_when_done_and_reports_the_last_read_on_timeout() {
        let mut reads = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let result: Result<(), Result<u32, ()>> = until(
            deadline,
            FAST,
            || {
                reads += 1;
                let value = reads;
                async move {
                    if value == 2 {
                        Err(())
                    } else {
                        Ok(value)
                    }
                }
            },
            |value| *value >= 4,
        )
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(reads, 4);

        let soon = Instant::now() + Duration::from_millis(10);
        let result: Result<(), Result<u32, ()>> =
            until(soon, FAST, || async { Ok(1) }, |_| false).await;
        assert_eq!(result, Err(Ok(1)));
    }
}
