//! Chunk encodings as stored in TSDB chunk files: the encoding byte and the XOR float
//! chunk codec.
//!
//! Mirrors Prometheus's `tsdb/chunkenc` package. Only the XOR (float) encoding is
//! decoded here; histogram chunks are recognised and reported as unsupported.

mod bstream;
mod xor;

use std::fmt;

pub use xor::{XorChunk, XorIterator};

/// The encoding byte of a chunk as stored in TSDB chunk files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// No encoding; never written to disk.
    None = 0,
    /// XOR ("Gorilla") float samples.
    Xor = 1,
    /// Integer native histograms.
    Histogram = 2,
    /// Float native histograms.
    FloatHistogram = 3,
}

impl Encoding {
    /// The byte stored on disk.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for Encoding {
    type Error = ChunkError;

    fn try_from(b: u8) -> Result<Self, ChunkError> {
        match b {
            0 => Ok(Encoding::None),
            1 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Histogram),
            3 => Ok(Encoding::FloatHistogram),
            other => Err(ChunkError::UnknownEncoding(other)),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::None => "none",
            Encoding::Xor => "XOR",
            Encoding::Histogram => "histogram",
            Encoding::FloatHistogram => "floathistogram",
        })
    }
}

/// Errors of the chunk codecs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The encoding byte is not one this implementation knows.
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
    /// The encoding is known but cannot be decoded as requested.
    #[error("unsupported chunk encoding {0}")]
    UnsupportedEncoding(Encoding),
    /// The chunk is shorter than its fixed header.
    #[error("chunk of {len} bytes is shorter than its {needed}-byte header")]
    ShortHeader {
        /// Length of the data given.
        len: usize,
        /// Header length required.
        needed: usize,
    },
    /// The data ends before all announced samples were decoded.
    #[error("xor chunk truncated: data ends inside sample {sample} of {num_samples}")]
    Truncated {
        /// 0-based index of the sample being decoded.
        sample: usize,
        /// Sample count from the chunk header.
        num_samples: usize,
    },
    /// The data contains an impossible bit pattern.
    #[error("corrupt xor chunk at sample {sample}: {reason}")]
    Corrupt {
        /// 0-based index of the sample being decoded.
        sample: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A sample does not come after the chunk's last sample.
    #[error("out-of-order sample: timestamp {t} is not after the chunk's last timestamp {last}")]
    OutOfOrder {
        /// Timestamp of the rejected sample.
        t: i64,
        /// Last timestamp in the chunk.
        last: i64,
    },
    /// The chunk holds as many samples as its header can count.
    #[error("chunk is full: it already holds the maximum of {max} samples")]
    Full {
        /// The maximum sample count.
        max: usize,
    },
}

/// Decodes any chunk as float samples. Only [`Encoding::Xor`] yields an iterator; other
/// known encodings give [`ChunkError::UnsupportedEncoding`], unknown bytes
/// [`ChunkError::UnknownEncoding`].
pub fn float_iterator(encoding: u8, data: &[u8]) -> Result<XorIterator<'_>, ChunkError> {
    match Encoding::try_from(encoding)? {
        Encoding::Xor => Ok(XorIterator::new(data)),
        other => Err(ChunkError::UnsupportedEncoding(other)),
    }
}

#[cfg(test)]
mod tests;
