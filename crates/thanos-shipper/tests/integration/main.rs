//! Integration tests of `thanos-shipper`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod common;
mod s3;
mod sync;
