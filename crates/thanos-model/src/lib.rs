//! The data model shared by every component: label sets, label matchers, samples,
//! native histograms and the chunk encodings.
//!
//! Mirrors Prometheus's `model/labels`, `model/histogram` and `tsdb/chunkenc` packages.

pub mod cache;
pub mod chunkenc;
pub mod error;
mod fast_regex;
pub mod histogram;
pub mod labels;
pub mod matcher;
pub mod relabel;
pub mod sample;

pub use chunkenc::{ChunkError, Encoding, XorChunk, XorIterator};
pub use compact_str::CompactString;
pub use error::ModelError;
pub use histogram::{CounterResetHint, FloatHistogram, Histogram, HistogramError, Span};
pub use labels::{Label, Labels, LabelsBuilder};
pub use matcher::{MatchType, Matcher};
pub use sample::Sample;
