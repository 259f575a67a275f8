//! Waiting for an event with a deadline: a condition checked every few milliseconds until it
//! holds, or a panic that names what was awaited and for how long. Tests synchronise on these,
//! never on a bare sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(20);

/// Checks `check` until it gives a value, for at most `limit`; panics naming `what` otherwise.
pub fn wait_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "waited {limit:?} in vain for {what}");
        std::thread::sleep(POLL);
    }
}

/// Checks `check` until it holds, for at most `limit`; panics naming `what` otherwise.
pub fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    wait_until(limit, what, || check().then_some(()))
}

/// Checks `check` until it holds, for at most `limit`; whether it did. For the few places that
/// go on either way (a process that may already be gone).
pub fn poll_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if check() {
            return true;
        }
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for asynchronous checks.
pub async fn wait_until_async<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < limit, "waited {limit:?} in vain for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] for asynchronous checks.
pub async fn wait_for_async<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_async(limit, what, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
}
