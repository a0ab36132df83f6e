//! Integration tests of `thanos-model`, built as one test binary: each module below is one
//! area of behaviour.

mod prometheus_histogram_chunks;
mod promtool_chunks;
