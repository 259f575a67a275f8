//! Failures inside the pipeline on the embedded transport: poison strips, a strip that keeps
//! failing until the dead-letter queue takes it, redelivered strips counted once, shutdown.

use std::time::Duration;

use bytes::Bytes;
use dsobel_service::model::{
    JobId, JobOptions, JobRecord, JobState, StripSource, StripTask, Task, Timings, now_ms,
};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app, spawn_app_on, spawn_app_with, test_png};

/// Stores a one-strip job record and returns its strip task (not yet published) and the key
/// of the strip's input rows.
async fn plant_job(app: &TestApp, w: u32, h: u32) -> (Task, String) {
    let t = app.coordinator.transport();
    let id = JobId::random();
    let options = JobOptions::default();
    let record = JobRecord {
        id: id.clone(),
        state: JobState::Queued,
        strips_total: 1,
        width: w,
        height: h,
        input_bytes: 0,
        result_bytes: None,
        options,
        timings: Timings::default(),
        error: None,
        created_ms: now_ms(),
        compression: 6,
        cut: dsobel_service::model::Cut::DecodeAndSplit,
        notes: Vec::new(),
        owner: Some(app.coordinator.replica().clone()),
        threshold_used: None,
    };
    dsobel_service::jobs::save_record(t, &record, Duration::from_secs(60)).await.unwrap();
    t.store
        .set_add(&t.keys.pending(app.coordinator.replica(), &id), id.as_str(), Duration::from_secs(60))
        .await
        .unwrap();
    let key = t.keys.input(&id, 0);
    let spec = dsobel_kernel::plan_strips(w as usize, h as usize, 1)[0];
    let task = StripTask::new(&id, &spec, &options, 6, StripSource::Rows { key: key.clone() });
    (Task::Strip(task), key)
}

async fn wait_state(app: &TestApp, id: &str, state: &str) -> Value {
    app.wait_state(id, state).await
}

#[tokio::test]
async fn a_poison_strip_fails_its_job_with_the_reason() {
    let app = spawn_app().await;
    let (task, input_key) = plant_job(&app, 8, 8).await;
    let t = app.coordinator.transport();
    // Input of the wrong size: the kernel refuses it, which can never succeed on retry.
    t.store.put(&input_key, Bytes::from_static(&[1, 2, 3]), Duration::from_secs(60)).await.unwrap();
    t.queue.publish(task.to_body()).await.unwrap();
    let status = wait_state(&app, task.job_id().as_str(), "failed").await;
    assert_eq!(status["error"]["code"], "strip-failed");
    let result = app.client.get(app.url(&format!("/result/{}", task.job_id()))).send().await.unwrap();
    assert_eq!(result.status(), 422);
    let body: Value = result.json().await.unwrap();
    assert_eq!(body["error"]["code"], "job-failed");
    assert!(body["error"]["message"].as_str().unwrap().contains("strip 1 of 1"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_strip_that_keeps_failing_is_dead_lettered_after_bounded_deliveries() {
    let app = spawn_app_with(&["--max-deliveries", "3"]).await;
    let (task, input_key) = plant_job(&app, 8, 8).await;
    let t = app.coordinator.transport();
    // The input key holds a hash, so every read fails as a store error: a transient failure
    // from the worker's point of view, retried until the delivery limit.
    t.store.hash_put(&input_key, "x", Bytes::from_static(b"y"), Duration::from_secs(60)).await.unwrap();
    t.queue.publish(task.to_body()).await.unwrap();
    let status = wait_state(&app, task.job_id().as_str(), "failed").await;
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.contains("after 3 deliveries"), "{message}");
    assert_eq!(app.metric("dsobel_strip_redeliveries_total").await, 2.0);
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_strip_is_counted_once_and_stitched_once() {
    let app = spawn_app_with(&["--workers", "1"]).await;
    let (png, _) = test_png(30, 20);
    let (task, input_key) = plant_job(&app, 30, 20).await;
    let t = app.coordinator.transport();
    let luma = dsobel_codec::decode_luma(&png, &dsobel_codec::Limits::default()).unwrap().pixels;
    t.store.put(&input_key, Bytes::from(luma), Duration::from_secs(60)).await.unwrap();
    // The same task twice, as after a redelivery.
    t.queue.publish(task.to_body()).await.unwrap();
    t.queue.publish(task.to_body()).await.unwrap();
    let status = wait_state(&app, task.job_id().as_str(), "done").await;
    assert_eq!(status["strips_done"], 1);
    // The job is done, so no stitch can start any more; the counter catches up with the
    // record a moment after it.
    dsobel_testkit::wait_for_async(Duration::from_secs(10), "the stitch to be counted", || async {
        app.metric("dsobel_stitches_total").await >= 1.0
    })
    .await;
    assert_eq!(app.metric("dsobel_stitches_total").await, 1.0);
    assert_eq!(t.queue.depth().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_accepted_jobs() {
    let app = spawn_app().await;
    let (png, _) = test_png(300, 200);
    let id = app.submit(png, "?fragments=6").await;
    let coordinator = app.coordinator.clone();
    app.stop().await;
    // The server is gone, but the work it accepted was finished before it stopped.
    let status = coordinator.status(&JobId::parse(&id).unwrap()).await.unwrap();
    assert_eq!(status.state, JobState::Done);
}

/// The memory store, except that the first `put` of a job's result fails, as a Redis
/// connection lost in the middle of a stitch would.
struct ResultPutFailsOnce {
    inner: dsobel_transport::MemoryStore,
    failed: std::sync::atomic::AtomicBool,
}

type StoreResult<T> = Result<T, dsobel_transport::TransportError>;

#[async_trait::async_trait]
impl dsobel_transport::Store for ResultPutFailsOnce {
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<()> {
        if key.ends_with(":result") && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(dsobel_transport::TransportError::Unavailable {
                service: "store",
                detail: "SET: broken pipe (on purpose)".into(),
            });
        }
        self.inner.put(key, value, ttl).await
    }
    async fn put_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> StoreResult<bool> {
        self.inner.put_if_absent(key, value, ttl).await
    }
    async fn get(&self, key: &str) -> StoreResult<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Bytes>>> {
        self.inner.get_many(keys).await
    }
    async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> StoreResult<Option<Bytes>> {
        self.inner.get_range(key, range).await
    }
    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        self.inner.delete(keys).await
    }
    async fn hash_put(&self, key: &str, field: &str, value: Bytes, ttl: Duration) -> StoreResult<bool> {
        self.inner.hash_put(key, field, value, ttl).await
    }
    async fn hash_len(&self, key: &str) -> StoreResult<u64> {
        self.inner.hash_len(key).await
    }
    async fn hash_get(&self, key: &str, field: &str) -> StoreResult<Option<Bytes>> {
        self.inner.hash_get(key, field).await
    }
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> StoreResult<()> {
        self.inner.set_add(key, member, ttl).await
    }
    async fn set_remove(&self, key: &str, member: &str) -> StoreResult<()> {
        self.inner.set_remove(key, member).await
    }
    async fn set_members(&self, key: &str) -> StoreResult<Vec<String>> {
        self.inner.set_members(key).await
    }
    async fn health_check(&self) -> StoreResult<()> {
        self.inner.health_check().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stitch_that_fails_half_way_lets_its_lock_go_and_the_next_sweep_finishes_the_job() {
    let app = spawn_app_on(&[], |mut transport| {
        let inner = dsobel_transport::MemoryStore::new();
        transport.store = std::sync::Arc::new(ResultPutFailsOnce { inner, failed: false.into() });
        transport
    })
    .await;
    let (png, _) = test_png(64, 48);
    let id = app.submit(png, "?fragments=2").await;
    // The stitch lock lives a minute: held on after the failed write, the job would wait that
    // long for the next stitch.
    let status = wait_state(&app, &id, "done").await;
    assert_eq!(status["strips_total"], 2);
}
