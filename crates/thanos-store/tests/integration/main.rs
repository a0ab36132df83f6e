//! Integration tests of `thanos-store`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod acceptance;
mod common;
mod faults;
mod index_cache;
mod measure;
mod series;
mod sharding;
