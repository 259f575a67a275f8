//! Wake-ups by job: whoever waits for a job (the backend that owns it, a `?wait=` upload, an
//! event stream) is woken by news of that job only, and only the processes that wait for a job
//! hear its news at all.
//!
//! Each job has a channel of its own ([`Keys::events`], on the shard of the job's keys). A
//! [`JobWatch`] subscribes this process's one listener to the job's channel before the news can
//! come (before the job is submitted, before its state is read), and remembers a wake-up that
//! arrives while nobody is waiting yet, so none is lost; dropping the last watch of a job
//! unsubscribes it. The listener's subscriptions are counted, so several watches of one job
//! (its owner, and a client waiting for it) share one subscription. Messages heard are handed
//! to [`Wakeups::wake`] by the coordinator's listening loop, which also carries out the
//! unsubscriptions that dropped watches ask for (a drop cannot wait for the server).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsobel_transport::{Listener, Notification};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::locks::lock;
use crate::model::{JobId, Keys};

/// Longest wait for the server to confirm a subscription before the watch goes on without it
/// (a wake-up may then be missed; waiters read the job's state again on their own).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The jobs watched in this process, and its listener.
pub struct Wakeups {
    jobs: Arc<Mutex<HashMap<JobId, Watched>>>,
    listener: Arc<dyn Listener>,
    keys: Keys,
    /// Channels whose last watch went, for the listening loop to unsubscribe.
    gone: mpsc::UnboundedSender<String>,
    gone_channels: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

#[derive(Debug)]
struct Watched {
    /// Counts the wake-ups; receivers see that it changed.
    news: watch::Sender<u64>,
    watchers: usize,
}

impl Wakeups {
    /// Wake-ups heard through `listener`, on the channels `keys` names.
    pub fn new(listener: Arc<dyn Listener>, keys: Keys) -> Wakeups {
        let (gone, gone_channels) = mpsc::unbounded_channel();
        Wakeups { jobs: Arc::default(), listener, keys, gone, gone_channels: Mutex::new(Some(gone_channels)) }
    }

    /// Starts watching job `id`: its channel is subscribed (the server confirmed it, or
    /// `SUBSCRIBE_WAIT`, two seconds, passed) when this returns.
    pub async fn watch(&self, id: &JobId) -> JobWatch {
        let news = {
            let mut jobs = lock(&self.jobs, "watched jobs");
            let watched =
                jobs.entry(id.clone()).or_insert_with(|| Watched { news: watch::channel(0).0, watchers: 0 });
            watched.watchers += 1;
            watched.news.subscribe()
        };
        let channel = self.keys.events(id);
        match tokio::time::timeout(SUBSCRIBE_WAIT, self.listener.subscribe(&channel)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(job_id = %id, error = %e, "wake-ups of this job may be missed for now")
            }
            Err(_) => {
                tracing::debug!(job_id = %id, "the subscription is not confirmed yet; wake-ups may be missed")
            }
        }
        JobWatch { id: id.clone(), channel, news, jobs: self.jobs.clone(), gone: self.gone.clone() }
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

    /// The next message heard, or the next channel to unsubscribe (done here); `None` once
    /// the listener stopped for good. For the one loop that listens (the first caller takes
    /// the channels to unsubscribe; later callers only hear).
    pub async fn next(&self, gone: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<Notification> {
        loop {
            let heard = match gone {
                Some(gone_channels) => tokio::select! {
                    biased;
                    channel = gone_channels.recv() => {
                        if let Some(channel) = channel
                            && let Err(e) = self.listener.unsubscribe(&channel).await
                        {
                            tracing::debug!(channel, error = %e, "could not unsubscribe yet");
                        }
                        continue;
                    }
                    heard = self.listener.next() => heard,
                },
                None => self.listener.next().await,
            };
            return heard;
        }
    }

    /// Carries out the unsubscriptions asked for so far, without waiting for more.
    pub async fn unsubscribe_gone(&self, gone: &mut mpsc::UnboundedReceiver<String>) {
        while let Ok(channel) = gone.try_recv() {
            if let Err(e) = self.listener.unsubscribe(&channel).await {
                tracing::debug!(channel, error = %e, "could not unsubscribe yet");
            }
        }
    }

    /// The channels to unsubscribe, for the listening loop (taken once).
    pub fn take_gone(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        lock(&self.gone_channels, "gone channels").take()
    }
}

/// One watcher of one job; stops watching when dropped.
#[derive(Debug)]
pub struct JobWatch {
    id: JobId,
    channel: String,
    news: watch::Receiver<u64>,
    jobs: Arc<Mutex<HashMap<JobId, Watched>>>,
    gone: mpsc::UnboundedSender<String>,
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
        // One unsubscription for each subscription (the listener counts them).
        let _ = self.gone.send(std::mem::take(&mut self.channel));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dsobel_transport::{MemoryNotifier, Notifier};

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    async fn wakeups() -> (Wakeups, MemoryNotifier) {
        let notifier = MemoryNotifier::new();
        let listener: Arc<dyn Listener> = Arc::from(notifier.listen().await.unwrap());
        (Wakeups::new(listener, Keys::new("test")), notifier)
    }

    #[tokio::test]
    async fn a_wake_up_before_the_wait_is_kept_and_other_jobs_do_not_wake() {
        let (wakeups, _) = wakeups().await;
        let (id_a, id_b) = (JobId::random(), JobId::random());
        let mut a = wakeups.watch(&id_a).await;
        let mut b = wakeups.watch(&id_b).await;
        wakeups.wake(&id_a);
        assert!(a.wait(soon()).await, "the wake-up that came first is seen");
        assert!(!a.wait(soon()).await, "and seen once");
        assert!(!b.wait(soon()).await, "another job's news does not wake b");
        wakeups.wake(&JobId::random());
    }

    #[tokio::test]
    async fn every_watcher_of_a_job_is_woken_and_entries_go_with_their_watchers() {
        let (wakeups, _) = wakeups().await;
        let job = JobId::random();
        let (mut first, mut second) = (wakeups.watch(&job).await, wakeups.watch(&job).await);
        assert_eq!(wakeups.watched(), 1);
        wakeups.wake(&job);
        assert!(first.wait(soon()).await && second.wait(soon()).await);
        drop(first);
        assert_eq!(wakeups.watched(), 1);
        drop(second);
        assert_eq!(wakeups.watched(), 0);
    }

    #[tokio::test]
    async fn only_a_watched_jobs_channel_is_heard_and_the_last_watch_unsubscribes_it() {
        let (wakeups, notifier) = wakeups().await;
        let keys = Keys::new("test");
        let (watched, other) = (JobId::random(), JobId::random());
        let watch = wakeups.watch(&watched).await;
        notifier.publish(&keys.events(&other), "not for us").await.unwrap();
        notifier.publish(&keys.events(&watched), "for us").await.unwrap();
        let mut gone = wakeups.take_gone();
        let heard = wakeups.next(&mut gone).await.unwrap();
        assert_eq!(
            (heard.channel.as_str(), heard.message.as_str()),
            (keys.events(&watched).as_str(), "for us")
        );
        drop(watch);
        // The loop carries out the unsubscription, then hears nothing more of the job.
        wakeups.unsubscribe_gone(gone.as_mut().unwrap()).await;
        notifier.publish(&keys.events(&watched), "too late").await.unwrap();
        let heard_more = tokio::time::timeout(Duration::from_millis(100), wakeups.next(&mut gone));
        assert!(heard_more.await.is_err(), "an unsubscribed channel is not heard");
    }
}
