//! Getting (back) onto the queue or the wake-up channel: try, and after a failure wait a pause
//! that doubles up to five seconds before trying again, until it works or shutdown begins.
//! Used by every long-lived consumer and subscriber, so a broker outage is ridden out the same
//! way everywhere.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Calls `attempt` until it succeeds (returning its value) or `shutdown` is cancelled
/// (returning `None`), logging each failure with `what`.
pub async fn until_connected<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pause = FIRST_PAUSE;
    while !shutdown.is_cancelled() {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(error = %e, "{what}; retrying in {pause:?}");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return None,
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        }
    }
    None
}
