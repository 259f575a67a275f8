//! # dsobel-codec: images in, luma out; and the whole one-image pipeline
//!
//! - [`decode`]: JPEG, PNG, WebP, GIF (first frame), BMP and TIFF to upright 8-bit luma, with
//!   EXIF orientation applied and [`Limits`] checked from the header before any pixel buffer is
//!   allocated;
//! - [`error`]: typed errors with stable codes (`unsupported-format`, `corrupt-image`,
//!   `image-too-large`, ...); no input makes this crate panic;
//! - [`pipeline`]: bytes → luma → strips → stitched PNG, as `dsobel process` runs it, and the
//!   decode that hands out a split job's strips as their rows appear ([`decode_strips`]); any
//!   operator and format through [`process_file`], strips with the halo their kernel needs
//!   ([`decode_strips_with_halo`]);
//! - [`RestartIndex`]: a JPEG with restart markers cut into strips straight from its
//!   compressed bytes, each strip decoded on its own ([`decode_restart_strip`]).

pub mod decode;
pub mod error;
mod jpeg;
pub mod limits;
pub mod orientation;
pub mod pipeline;

pub use decode::{Format, Probe, decode_luma, probe};
pub use error::{DecodeError, ErrorCode};
pub use jpeg::restart::{
    PIECE_BYTES, PieceStart, RestartIndex, RestartScanner, StripBytes, decode_restart_strip,
    decode_restart_strip_in_pieces, decode_restart_strip_in_pieces_with_halo, decode_restart_strip_with_halo,
    piece_ranges,
};
pub use limits::Limits;
pub use orientation::LumaImage;
pub use pipeline::{
    ProcessError, ProcessOptions, Processed, ProcessedFile, RunOptions, StageTimings, StripsError,
    decode_strips, decode_strips_with_halo, process_bytes, process_file,
};
