//! Integration tests of `thanos-proto`, built as one test binary: each module below is one
//! area of behaviour.

mod golden;
mod grpc;
mod roundtrip;
mod snappy_bomb;
