//! Integration tests of `thanos-promql`, built as one test binary: each module below is one
//! area of behaviour, and `dsl` reads the promqltest files.

mod dsl;
mod engine;
mod promqltest;
