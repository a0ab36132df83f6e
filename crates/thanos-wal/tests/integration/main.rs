//! Integration tests of `thanos-wal`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod checkpoint;
mod common;
mod crash;
mod python_cross_check;
mod real_prometheus;
