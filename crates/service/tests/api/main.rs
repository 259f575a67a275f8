//! API tests against the embedded mode: one binary of tests, one `spawn_app()` harness on
//! port 0, real HTTP through reqwest, the in-memory transport underneath.

mod faults;
mod helpers;
mod jobs;
mod refusals;
