//! Integration tests of `thanos-test-support`, built as one test binary: each module below is one
//! area of behaviour.

mod rw_load_bin;
mod s3_test_server_bin;
