//! Integration tests of `thanos-server`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod common;
mod direct_channel;
mod grpc_server;
mod http_server;
mod run_group;
