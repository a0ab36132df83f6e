//! Flag groups, one `#[derive(clap::Args)]` struct per concern, with Thanos' exact flag
//! names and defaults (components.md §1–§5).
//!
//! Booleans follow kingpin: `--flag` sets true, `--flag=false` and `--no-flag` set false
//! (the `--no-` form is rewritten before clap parses, see [`crate::rewrite_negated_bools`]).

pub mod client_tls;
pub mod global;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod objstore;
pub mod query;
pub mod receive;
pub mod store;
pub mod values;

use std::path::{Path, PathBuf};

/// The path of an optional path flag, treating an empty value (kingpin's "unset") as absent.
pub(crate) fn non_empty(path: &Option<PathBuf>) -> Option<&Path> {
    path.as_deref().filter(|path| !path.as_os_str().is_empty())
}
