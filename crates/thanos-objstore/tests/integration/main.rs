//! Integration tests of `thanos-objstore`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod behaviour;
mod common;
mod retry;
