//! Wake-ups: the short messages workers and backends publish about a job.

use super::JobId;

/// A wake-up on the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A strip of the job was stored.
    StripDone(JobId),
    /// The job's PNG is ready.
    Done(JobId),
    /// The job failed.
    Failed(JobId),
}

impl Event {
    /// The message text.
    pub fn encode(&self) -> String {
        match self {
            Event::StripDone(id) => format!("strip {id}"),
            Event::Done(id) => format!("done {id}"),
            Event::Failed(id) => format!("failed {id}"),
        }
    }

    /// Parses a message; `None` for anything else.
    pub fn decode(message: &str) -> Option<Event> {
        let (kind, id) = message.split_once(' ')?;
        let id = JobId::parse(id)?;
        match kind {
            "strip" => Some(Event::StripDone(id)),
            "done" => Some(Event::Done(id)),
            "failed" => Some(Event::Failed(id)),
            _ => None,
        }
    }

    /// The job the event is about.
    pub fn job_id(&self) -> &JobId {
        match self {
            Event::StripDone(id) | Event::Done(id) | Event::Failed(id) => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let id = JobId::random;
        for e in [Event::StripDone(id()), Event::Done(id()), Event::Failed(id())] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        assert_eq!(Event::decode("hello"), None);
    }
}
