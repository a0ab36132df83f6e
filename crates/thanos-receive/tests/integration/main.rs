//! Integration tests of `thanos-receive`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod blocks;
mod common;
mod hashring_config;
mod hashring_golden;
mod histograms;
mod http_table;
mod limits;
mod memory;
mod prometheus;
mod router_http;
mod store_api;
mod wal;
