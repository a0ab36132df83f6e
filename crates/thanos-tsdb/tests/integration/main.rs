//! Integration tests of `thanos-tsdb`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod common;
mod corruption;
mod prometheus_head_blocks;
mod prometheus_server;
mod promtool;
