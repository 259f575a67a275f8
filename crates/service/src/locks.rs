//! Locks that never fail open.
//!
//! A `std::sync::Mutex` is poisoned when a thread panics while holding it. The data behind
//! the locks of this crate (counts of jobs in flight, token buckets, open streams, cached
//! broker counts) stays valid after such a panic, so a poisoned lock is taken anyway: the
//! limit it guards keeps being enforced, instead of being skipped (which would turn
//! admission or rate limiting off) or refusing everything from then on. Each time is logged
//! as an error and counted in `dsobel_poisoned_locks_total`, since it means a bug.

use std::sync::{LazyLock, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;

/// Locks found poisoned in this process (registered by every [`crate::telemetry::Metrics`]).
pub static POISONED_LOCKS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Takes `mutex`, also when a panic poisoned it (logged and counted; the poison is cleared).
pub fn lock<'a, T>(mutex: &'a Mutex<T>, what: &'static str) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|poisoned| {
        tracing::error!(lock = what, "a lock was poisoned by a panic; its data is used as it is");
        POISONED_LOCKS.inc();
        mutex.clear_poison();
        poisoned.into_inner()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_counted_and_cleared() {
        let mutex = std::sync::Arc::new(Mutex::new(5));
        let poisoner = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(mutex.is_poisoned());
        let before = POISONED_LOCKS.get();
        assert_eq!(*lock(&mutex, "test"), 5, "the data is still there");
        assert_eq!(POISONED_LOCKS.get(), before + 1);
        assert!(!mutex.is_poisoned());
    }
}
