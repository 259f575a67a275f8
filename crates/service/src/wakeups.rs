//! Wake-ups by job: whoever waits for a job (a `?wait=` upload, an event stream) is woken by
//! news of that job only, not by every job's.
//!
//! A [`JobWatch`] is taken before the news can come (before the job is submitted, before its
//! state is read) and remembers a wake-up that arrives while nobody is waiting yet, so none
//! is lost. The entry of a job exists while someone watches it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::locks::lock;
use crate::model::JobId;

/// The jobs watched in this process.
#[derive(Debug, Default)]
pub struct Wakeups {
    jobs: Arc<Mutex<HashMap<JobId, Watched>>>,
}

#[derive(Debug)]
struct Watched {
    /// Counts the wake-ups; receivers see that it changed.
    news: watch::Sender<u64>,
    watchers: usize,
}

impl Wakeups {
    /// Starts watching job `id`.
    pub fn watch(&self, id: &JobId) -> JobWatch {
        let mut jobs = lock(&self.jobs, "watched jobs");
        let watched =
            jobs.entry(id.clone()).or_insert_with(|| Watched { news: watch::channel(0).0, watchers: 0 });
        watched.watchers += 1;
        JobWatch { id: id.clone(), news: watched.news.subscribe(), jobs: self.jobs.clone() }
    }

    /// Wakes whoever watches job `id` (nobody, often: then this costs a lookup).
    pub fn wake(&self, id: &JobId) {
        let jobs = lock(&self.jobs, "watched jobs");
        if let Some(watched) = jobs.get(id) {
            watched.news.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Jobs watched right now.
    pub fn watched(&self) -> usize {
        lock(&self.jobs, "watched jobs").len()
    }
}

/// One watcher of one job; stops watching when dropped.
#[derive(Debug)]
pub struct JobWatch {
    id: JobId,
    news: watch::Receiver<u64>,
    jobs: Arc<Mutex<HashMap<JobId, Watched>>>,
}

impl JobWatch {
    /// Waits for news of the job since the last call (or since the watch began): true when
    /// some came, false when `deadline` passed first.
    pub async fn wait(&mut self, deadline: Instant) -> bool {
        matches!(tokio::time::timeout_at(deadline, self.news.changed()).await, Ok(Ok(())))
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        let mut jobs = lock(&self.jobs, "watched jobs");
        if let Some(watched) = jobs.get_mut(&self.id) {
            watched.watchers -= 1;
            if watched.watchers == 0 {
                jobs.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    #[tokio::test]
    async fn a_wake_up_before_the_wait_is_kept_and_other_jobs_do_not_wake() {
        let wakeups = Wakeups::default();
        let (id_a, id_b) = (JobId::random(), JobId::random());
        let mut a = wakeups.watch(&id_a);
        let mut b = wakeups.watch(&id_b);
        wakeups.wake(&id_a);
        assert!(a.wait(soon()).await, "the wake-up that came first is seen");
        assert!(!a.wait(soon()).await, "and seen once");
        assert!(!b.wait(soon()).await, "another job's news does not wake b");
        wakeups.wake(&JobId::random());
    }

    #[tokio::test]
    async fn every_watcher_of_a_job_is_woken_and_entries_go_with_their_watchers() {
        let wakeups = Wakeups::default();
        let job = JobId::random();
        let (mut first, mut second) = (wakeups.watch(&job), wakeups.watch(&job));
        assert_eq!(wakeups.watched(), 1);
        wakeups.wake(&job);
        assert!(first.wait(soon()).await && second.wait(soon()).await);
        drop(first);
        assert_eq!(wakeups.watched(), 1);
        drop(second);
        assert_eq!(wakeups.watched(), 0);
    }
}
