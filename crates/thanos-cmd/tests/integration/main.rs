//! Integration tests of `thanos-cmd`, built as one test binary: each module below is one
//! area of behaviour, and `common` holds the helpers they share.

mod cli;
mod common;
mod e2e_flow;
mod flag_drift;
mod query_ui;
mod receive_blocks;
mod receive_hashring;
mod receive_kill;
mod system_receive_query;
mod system_store_query;
