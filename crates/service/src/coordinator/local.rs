//! The jobs this backend accepted and has not seen end: what admission counts, what the
//! sweeper checks against the store, and what `/status` answers from when the store lost a
//! job this backend still holds.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::locks::lock;
use crate::model::{JobId, JobRecord};
use crate::telemetry::Metrics;

/// Jobs accepted here and not finished, with their records as accepted.
pub(super) struct LocalJobs {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
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

    /// Holds a newly accepted job.
    pub(super) fn insert(&self, record: JobRecord) {
        if lock(&self.jobs, "local jobs").insert(record.id.clone(), record).is_none() {
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
        lock(&self.jobs, "local jobs").get(id).cloned()
    }

    /// Every record held here.
    pub(super) fn records(&self) -> Vec<JobRecord> {
        lock(&self.jobs, "local jobs").values().cloned().collect()
    }
}
