//! `thanos query`: flag validation and (later) wiring of the querier.

use anyhow::Context as _;

use crate::flags::objstore::read_pair;
use crate::flags::query::QueryFlags;

/// Validates every flag of `thanos query`, then reports that the component is not
/// implemented yet.
pub fn run(flags: &QueryFlags) -> anyhow::Result<()> {
    let _http = flags.http.options("http")?;
    let _grpc = flags.grpc.options()?;
    let _client = flags.client.options()?;
    let selector_labels =
        thanos_server::parse_labels(&flags.selector_label).context("invalid --selector-label")?;
    read_pair(
        "endpoint.sd",
        flags.endpoint_sd_config_file.as_deref(),
        flags.endpoint_sd_config.as_deref(),
    )?;
    read_pair(
        "selector.relabel",
        flags.selector_relabel_config_file.as_deref(),
        flags.selector_relabel_config.as_deref(),
    )?;
    read_pair(
        "request.logging",
        flags.request_logging_config_file.as_deref(),
        flags.request_logging_config.as_deref(),
    )?;
    tracing::info!(
        endpoints = flags.endpoint.len(),
        selector_labels = selector_labels.len(),
        replica_labels = ?flags.query_replica_label,
        "query flags validated"
    );
    Err(crate::not_implemented())
}
