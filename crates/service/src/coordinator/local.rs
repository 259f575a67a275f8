//! The jobs this backend accepted and has not seen end: what admission counts, what the
//! sweeper checks against the store, and what `/status` answers from when the store lost a
//! job this backend still holds.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::locks::lock;
use crate::model::{JobId, JobRecord};
use crate::telemetry::Metrics;
use crate::wakeups::JobWatch;

/// Jobs accepted here and not finished, with their records as accepted and the watch that
/// keeps this process subscribed to their wake-ups.
pub(super) struct LocalJobs {
    jobs: Mutex<HashMap<JobId, (JobRecord, JobWatch)>>,
    metrics: Metrics,
}

impl LocalJobs {
    pub(super) fn new(metrics: Metrics) -> LocalJobs {
        LocalJobs { jobs: Mutex::new(HashMap::new()), metrics }
    }

    /// How many.
    pub(super) fn len(&self) -> usize {
        lock(&self.jobs, "local jobs").len()
    }

    /// Holds a newly accepted job, hearing its wake-ups through `watch` while it is held.
    pub(super) fn insert(&self, record: JobRecord, watch: JobWatch) {
        if lock(&self.jobs, "local jobs").insert(record.id.clone(), (record, watch)).is_none() {
            self.metrics.jobs_in_flight.inc();
        }
    }

    /// Lets a job go (it ended, or its submission was abandoned).
    pub(super) fn remove(&self, id: &JobId) {
        if lock(&self.jobs, "local jobs").remove(id).is_some() {
            self.metrics.jobs_in_flight.dec();
        }
    }

    /// The record of a job held here.
    pub(super) fn get(&self, id: &JobId) -> Option<JobRecord> {
        lock(&self.jobs, "local jobs").get(id).map(|(record, _)| record.clone())
    }

    /// Every record held here.
    pub(super) fn records(&self) -> Vec<JobRecord> {
        lock(&self.jobs, "local jobs").values().map(|(record, _)| record.clone()).collect()
    }
}
