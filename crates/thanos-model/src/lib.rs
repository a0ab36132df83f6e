//! The data model shared by every component: label sets, label matchers, samples and the
//! chunk encodings.
//!
//! Mirrors Prometheus's `model/labels` and `tsdb/chunkenc` packages.

pub mod chunkenc;
pub mod error;
mod fast_regex;
pub mod labels;
pub mod matcher;
pub mod sample;

pub use chunkenc::{ChunkError, Encoding, XorChunk, XorIterator};
pub use error::ModelError;
pub use labels::{Label, Labels, LabelsBuilder};
pub use matcher::{MatchType, Matcher};
pub use sample::Sample;
