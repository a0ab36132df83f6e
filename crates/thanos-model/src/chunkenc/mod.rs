//! Chunk encodings as stored in TSDB chunk files: the encoding byte, the XOR float
//! chunk codec and the integer and float native histogram codecs.
//!
//! Mirrors Prometheus's `tsdb/chunkenc` package. [`float_iterator`] reads float chunks
//! only; [`decode_any`] reads every encoding this crate knows.

mod bstream;
pub mod histogram;
mod xor;

use std::fmt;

use crate::histogram::{FloatHistogram, Histogram, HistogramError};
use crate::sample::Sample;

pub use histogram::{
    AppendOutcome, CounterResetHeader, CutReason, FloatHistogramChunk, FloatHistogramIterator,
    HistogramChunk, HistogramIterator,
};
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
    /// A histogram chunk's data ends before all announced samples were decoded.
    #[error("{encoding} chunk truncated: data ends inside sample {sample} of {num_samples}")]
    HistogramTruncated {
        /// Encoding of the chunk.
        encoding: Encoding,
        /// 0-based index of the sample being decoded.
        sample: usize,
        /// Sample count from the chunk header.
        num_samples: usize,
    },
    /// A histogram chunk contains an impossible value.
    #[error("corrupt {encoding} chunk at sample {sample}: {reason}")]
    HistogramCorrupt {
        /// Encoding of the chunk.
        encoding: Encoding,
        /// 0-based index of the sample being decoded.
        sample: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A histogram given to an appender cannot be encoded.
    #[error("invalid histogram: {0}")]
    InvalidHistogram(#[from] HistogramError),
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

/// One decoded sample of any chunk encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkSample {
    /// A float sample (XOR chunks).
    Float(Sample),
    /// An integer histogram sample: timestamp and histogram.
    Histogram(i64, Histogram),
    /// A float histogram sample: timestamp and histogram.
    FloatHistogram(i64, FloatHistogram),
}

impl ChunkSample {
    /// The sample's timestamp.
    pub fn t(&self) -> i64 {
        match self {
            ChunkSample::Float(s) => s.t,
            ChunkSample::Histogram(t, _) | ChunkSample::FloatHistogram(t, _) => *t,
        }
    }
}

/// An iterator over the samples of a chunk of any supported encoding.
#[derive(Debug, Clone)]
pub enum SampleIterator<'a> {
    /// An XOR chunk.
    Float(XorIterator<'a>),
    /// An integer histogram chunk.
    Histogram(HistogramIterator<'a>),
    /// A float histogram chunk.
    FloatHistogram(FloatHistogramIterator<'a>),
}

impl SampleIterator<'_> {
    /// The chunk's encoding.
    pub fn encoding(&self) -> Encoding {
        match self {
            SampleIterator::Float(_) => Encoding::Xor,
            SampleIterator::Histogram(_) => Encoding::Histogram,
            SampleIterator::FloatHistogram(_) => Encoding::FloatHistogram,
        }
    }

    /// Number of samples the chunk header announces.
    pub fn num_samples(&self) -> usize {
        match self {
            SampleIterator::Float(it) => it.num_samples(),
            SampleIterator::Histogram(it) => it.num_samples(),
            SampleIterator::FloatHistogram(it) => it.num_samples(),
        }
    }

    /// The error that stopped iteration early, if any.
    pub fn err(&self) -> Option<&ChunkError> {
        match self {
            SampleIterator::Float(it) => it.err(),
            SampleIterator::Histogram(it) => it.err(),
            SampleIterator::FloatHistogram(it) => it.err(),
        }
    }

    /// Advances to the first sample with timestamp `>= t` and returns it (the current
    /// sample again when it already qualifies).
    pub fn seek(&mut self, t: i64) -> Option<ChunkSample> {
        match self {
            SampleIterator::Float(it) => it.seek(t).map(ChunkSample::Float),
            SampleIterator::Histogram(it) => it.seek(t).map(|(t, h)| ChunkSample::Histogram(t, h)),
            SampleIterator::FloatHistogram(it) => {
                it.seek(t).map(|(t, h)| ChunkSample::FloatHistogram(t, h))
            }
        }
    }
}

impl Iterator for SampleIterator<'_> {
    type Item = ChunkSample;

    fn next(&mut self) -> Option<ChunkSample> {
        match self {
            SampleIterator::Float(it) => it.next().map(ChunkSample::Float),
            SampleIterator::Histogram(it) => it.next().map(|(t, h)| ChunkSample::Histogram(t, h)),
            SampleIterator::FloatHistogram(it) => {
                it.next().map(|(t, h)| ChunkSample::FloatHistogram(t, h))
            }
        }
    }
}

impl std::iter::FusedIterator for SampleIterator<'_> {}

/// Decodes a chunk of any encoding this crate reads: XOR (1), histogram (2) and float
/// histogram (3). The encoding byte must be the block form (head chunk readers clear the
/// out-of-order bit 0x80 first). [`Encoding::None`] gives
/// [`ChunkError::UnsupportedEncoding`], unknown bytes [`ChunkError::UnknownEncoding`].
/// Data errors surface through [`SampleIterator::err`] while iterating.
pub fn decode_any(encoding: u8, data: &[u8]) -> Result<SampleIterator<'_>, ChunkError> {
    match Encoding::try_from(encoding)? {
        Encoding::Xor => Ok(SampleIterator::Float(XorIterator::new(data))),
        Encoding::Histogram => Ok(SampleIterator::Histogram(HistogramIterator::new(data))),
        Encoding::FloatHistogram => Ok(SampleIterator::FloatHistogram(
            FloatHistogramIterator::new(data),
        )),
        other => Err(ChunkError::UnsupportedEncoding(other)),
    }
}

#[cfg(test)]
mod tests;
