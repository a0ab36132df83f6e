//! Integration tests of `thanos-query`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod api;
mod common;
mod endpoint_sd;
mod exemplars;
mod promtool;
mod ui;
