//! What is wrong with a scan, and where, in plain words; and why a streaming decode stopped.

use super::BadData;

/// Why a streaming decode stopped.
#[derive(Debug)]
pub(crate) enum StreamError<E> {
    /// The entropy-coded data is corrupt or truncated.
    Data(ScanError),
    /// A decode on two threads could not start its second thread.
    NoThread,
    /// The consumer of the rows failed.
    Consumer(E),
}

/// The image's rows, for saying where a scan went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(super) height: usize,
    pub(super) rows_per_mcu_row: usize,
}

/// What is wrong with a scan, and where: said in plain words by its `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanError {
    /// What is wrong.
    pub(crate) bad: BadData,
    /// The MCU row being decoded (the number of MCU rows when the end was checked).
    pub(crate) mcu_row: usize,
    pub(super) jpeg: Geometry,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Geometry { height, rows_per_mcu_row } = self.jpeg;
        let first = (self.mcu_row * rows_per_mcu_row).min(height);
        let last = ((self.mcu_row + 1) * rows_per_mcu_row).min(height);
        match self.bad {
            BadData::Ended => write!(f, "the data ends after row {first} of {height}"),
            BadData::BadCode => write!(f, "the data is corrupt in rows {}–{last} of {height}", first + 1),
            BadData::Restart { expected, found: Some(found) } => write!(
                f,
                "restart marker {found} found where {expected} was expected (rows {}–{last} of {height})",
                first + 1
            ),
            BadData::Restart { expected, found: None } => {
                write!(f, "restart marker {expected} is missing (rows {}–{last} of {height})", first + 1)
            }
            BadData::NoEnd => write!(f, "the file ends without its end-of-image marker"),
            BadData::Extraneous(bytes) => {
                write!(f, "the data is corrupt: {bytes} bytes are left over after the last of {height} rows")
            }
        }
    }
}
