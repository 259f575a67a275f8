//! Why an input could not be turned into luma, with a stable code for each reason.

use std::fmt;

/// A refusal or failure while reading an image. Never a panic: every input gets one of these
/// or a luma image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("the input is empty")]
    Empty,
    /// The bytes are not one of the supported formats.
    #[error("unsupported format: {0} (supported: JPEG, PNG, WebP, GIF, BMP, TIFF)")]
    UnsupportedFormat(String),
    /// The format is known, but this file uses a feature of it that dsobel does not decode
    /// (arithmetic-coded, lossless, hierarchical or 12-bit JPEG).
    #[error("unsupported {format} image: {feature} is not supported")]
    UnsupportedImage {
        /// The format.
        format: &'static str,
        /// The feature, in words.
        feature: &'static str,
    },
    /// The format is known but the data is damaged, truncated or inconsistent.
    #[error("corrupt {format} image: {detail}")]
    Corrupt {
        /// The format the header claimed.
        format: &'static str,
        /// What the decoder reported.
        detail: String,
    },
    /// The header declares more pixels, or a larger side, than allowed.
    #[error("image of {width}x{height} pixels exceeds the limit of {limit}")]
    TooManyPixels {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit, in words (e.g. "100000000 pixels").
        limit: String,
    },
    /// The input has more bytes than allowed.
    #[error("input of {size} bytes exceeds the limit of {limit} bytes")]
    TooManyBytes {
        /// Input size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// The stable, kebab-case codes of [`DecodeError`], as used in JSON errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `empty-input`
    EmptyInput,
    /// `unsupported-format`
    UnsupportedFormat,
    /// `unsupported-image`
    UnsupportedImage,
    /// `corrupt-image`
    CorruptImage,
    /// `image-too-large`
    ImageTooLarge,
    /// `payload-too-large`
    PayloadTooLarge,
}

impl ErrorCode {
    /// Every code, for mapping a stored code string back (see [`ErrorCode::parse`]).
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::EmptyInput,
        ErrorCode::UnsupportedFormat,
        ErrorCode::UnsupportedImage,
        ErrorCode::CorruptImage,
        ErrorCode::ImageTooLarge,
        ErrorCode::PayloadTooLarge,
    ];

    /// The code whose string is `code`, if it is one of these.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The code as a string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::EmptyInput => "empty-input",
            ErrorCode::UnsupportedFormat => "unsupported-format",
            ErrorCode::UnsupportedImage => "unsupported-image",
            ErrorCode::CorruptImage => "corrupt-image",
            ErrorCode::ImageTooLarge => "image-too-large",
            ErrorCode::PayloadTooLarge => "payload-too-large",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DecodeError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Empty => ErrorCode::EmptyInput,
            DecodeError::UnsupportedFormat(_) => ErrorCode::UnsupportedFormat,
            DecodeError::UnsupportedImage { .. } => ErrorCode::UnsupportedImage,
            DecodeError::Corrupt { .. } => ErrorCode::CorruptImage,
            DecodeError::TooManyPixels { .. } => ErrorCode::ImageTooLarge,
            DecodeError::TooManyBytes { .. } => ErrorCode::PayloadTooLarge,
        }
    }
}
