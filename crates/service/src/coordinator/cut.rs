//! How a job is cut into tasks (DESIGN §3): one whole-image task, strips read from a JPEG's
//! restart intervals, or strips handed out by the worker that decodes the image; and how many
//! strips, from the system's idle workers (as the last beat counted them) and the configured
//! bounds.

use dsobel_codec::{Format, RestartIndex};

use super::{Coordinator, MIN_STRIP_ROWS};
use crate::model::{Cut, JobOptions};

/// How a job is cut into tasks.
pub(super) enum Plan {
    /// One whole-image task.
    Whole,
    /// One task that decodes the image and hands out this many strips as their rows appear.
    Decode(usize),
    /// This many strip tasks, each reading its rows from the JPEG's restart intervals.
    Restart(Box<RestartIndex>, usize),
}

impl Plan {
    /// Strips of the job.
    pub(super) fn strips(&self) -> usize {
        match self {
            Plan::Whole => 1,
            Plan::Decode(n) | Plan::Restart(_, n) => *n,
        }
    }

    /// The cut as the API names it.
    pub(super) fn cut(&self) -> Cut {
        match self {
            Plan::Whole => Cut::Whole,
            Plan::Decode(_) => Cut::DecodeAndSplit,
            Plan::Restart(..) => Cut::RestartIntervals,
        }
    }
}

/// What the image is, as its header says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) format: Format,
    pub(super) width: usize,
    pub(super) height: usize,
}

impl Coordinator {
    /// How many strips to cut on its own: one per idle worker, but none while tasks wait in
    /// the queue (the workers already have jobs to chew on, and a whole-image task is the
    /// cheapest way through) and no strip under the minimum size. A worker counts as busy for
    /// each job in flight in the whole system, as the last beat counted them; before the
    /// first beat, nothing is split on its own.
    fn auto_strips(&self, width: usize, height: usize) -> usize {
        let Some(load) = self.system_load() else { return 1 };
        if load.ready > 0 {
            return 1;
        }
        let idle = (load.consumers as usize).saturating_sub(load.in_flight as usize);
        let pixels = (width * height) as u64;
        let most = (pixels / self.config.min_strip_pixels.max(1)).max(1) as usize;
        idle.min(most).clamp(1, height.max(1))
    }

    /// The most strips an image `height` rows tall may be cut into: no strip thinner than
    /// [`MIN_STRIP_ROWS`], and no more than the configured maximum (one upload must not turn
    /// into thousands of tasks that other jobs wait behind).
    pub(super) fn most_strips(&self, height: usize) -> usize {
        (height / MIN_STRIP_ROWS).clamp(1, self.config.max_strips.max(1))
    }

    /// How the job is cut (DESIGN §3). Asked-for strips are cut as asked (up to
    /// [`Self::most_strips`]): from a JPEG's restart intervals when they can give that many,
    /// else by the worker that decodes. On its own ([`Self::auto_strips`]) a job is split only
    /// when its strips can be read from restart intervals: a split decoded by one worker did
    /// not pay in measurements (the decode, which stays on one worker, is most of the work), so
    /// such jobs stay whole, where a worker with a spare core overlaps the decode with the
    /// filter itself.
    ///
    /// Every single-pass operator ([`JobOptions::single_pass`]) is cut the same way; one whose
    /// kernel reaches past the next row (`ksize` 5 or 7) is not read from restart intervals
    /// (their strips carry one row of halo), only decoded and handed out. Otsu's threshold and
    /// Canny run as one whole-image task: the worker computes them with the same function as
    /// `dsobel process`, so the bytes are the same; their two-phase strips (exact for any cut
    /// in `dsobel process --strips`) are not yet handed to several workers.
    pub(super) fn plan(
        &self,
        shape: &Shape,
        markers: Option<Box<RestartIndex>>,
        options: &JobOptions,
    ) -> Plan {
        if !options.single_pass() {
            return Plan::Whole;
        }
        let markers = markers.filter(|_| options.operator().halo() == 1);
        let asked = options.fragments;
        let Shape { format, width, height } = *shape;
        let most = self.most_strips(height);
        let count = match asked {
            Some(n) => (n as usize).clamp(1, most),
            None => self.auto_strips(width, height).min(most),
        };
        if count <= 1 {
            return Plan::Whole;
        }
        if format == Format::Jpeg
            && let Some(index) = markers
        {
            let possible = count.min(index.max_strips());
            // An explicit count is kept exactly; otherwise fewer strips are fine.
            if possible >= 2 && (asked.is_none() || possible == count) {
                return Plan::Restart(index, possible);
            }
        }
        if asked.is_none() {
            return Plan::Whole;
        }
        // Decoded rows travel through the store: no strip's rows over the maximum.
        let least = ((width * height) as u64).div_ceil(self.config.max_strip_bytes.max(1)) as usize;
        Plan::Decode(count.max(least).min(height.max(1)))
    }
}
