//! The owner of a process's background tasks.
//!
//! Every task a backend starts beside the request that caused it (a stitch after a wake-up,
//! the deletion of an upload that will not be used) is spawned here, on one
//! [`TaskTracker`], so shutdown can wait for all of them. Stopping is in two steps: first
//! the tasks get the grace period to finish; then [`Background::aborting`] fires, and each
//! task still running must stop at once and give back what it holds (a stitch lets its job's
//! lock go), within a short bound. Nothing is left running, or holding a lock, after
//! [`Background::stop`] returns.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long tasks get to give back what they hold once the grace period is over.
const UNDO: Duration = Duration::from_secs(3);

/// The background tasks of one process.
#[derive(Debug, Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
    abort: CancellationToken,
}

impl Background {
    /// No tasks yet.
    pub fn new() -> Background {
        Background::default()
    }

    /// Runs `task` in the background, owned here.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Cancelled when a task still running after the grace period must stop and undo.
    pub fn aborting(&self) -> &CancellationToken {
        &self.abort
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Takes no new tasks, waits up to `grace` for the running ones, then asks the rest to
    /// stop ([`Background::aborting`]) and waits for them a little longer. True when every
    /// task ended within the grace period.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_ok() {
            return true;
        }
        tracing::warn!(
            tasks = self.tracker.len(),
            "background tasks still running after the grace period; stopping them"
        );
        self.abort.cancel();
        if tokio::time::timeout(UNDO, self.tracker.wait()).await.is_err() {
            tracing::error!(tasks = self.tracker.len(), "background tasks did not stop when asked");
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_finish_within_the_grace_or_are_stopped_and_undo() {
        let background = Background::new();
        let (done, undone) = (CancellationToken::new(), CancellationToken::new());
        background.spawn({
            let done = done.clone();
            async move { done.cancel() }
        });
        background.spawn({
            let (abort, undone) = (background.aborting().clone(), undone.clone());
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = abort.cancelled() => undone.cancel(),
                }
            }
        });
        assert!(!background.stop(Duration::from_millis(50)).await, "one task outlived the grace");
        assert!(done.is_cancelled() && undone.is_cancelled());
        assert_eq!(background.running(), 0);
    }
}
