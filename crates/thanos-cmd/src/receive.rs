//! `thanos receive`: flag validation and (later) wiring of the receiver.

use anyhow::{Context as _, bail};
use thanos_server::ServerTlsOptions;

use crate::flags::non_empty;
use crate::flags::objstore::read_pair;
use crate::flags::receive::ReceiveFlags;

/// How the receiver runs, derived from the flags (components.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Routes by hashring and stores its own share.
    RouterIngestor,
    /// Pure router: no TSDB, no upload.
    RouterOnly,
    /// Single-node hashring; stores everything it receives.
    IngestorOnly,
}

/// Validates every flag of `thanos receive`, then reports that the component is not
/// implemented yet.
pub fn run(flags: &ReceiveFlags) -> anyhow::Result<()> {
    let labels = thanos_server::parse_labels(&flags.labels).context("invalid --label")?;
    if labels.is_empty() {
        bail!(
            "no external labels configured for receive: at least one --label=name=\"value\" \
             uniquely identifying this receiver is required (ideally with a receive_ prefix)"
        );
    }
    if flags.receive_replication_factor == 0 {
        bail!("--receive.replication-factor must be at least 1");
    }
    if flags.tsdb_min_block_duration > flags.tsdb_max_block_duration {
        bail!("--tsdb.min-block-duration must not exceed --tsdb.max-block-duration");
    }
    let _http = flags.http.options("http")?;
    let _grpc = flags.grpc.options()?;
    let _peers = flags.client.options()?;
    if let Some(tls) = ServerTlsOptions::from_flags(
        non_empty(&flags.remote_write_server_tls_cert),
        non_empty(&flags.remote_write_server_tls_key),
        non_empty(&flags.remote_write_server_tls_client_ca),
        flags.remote_write_server_tls_min_version,
    )
    .context("invalid --remote-write.server-tls-* flags")?
    {
        tls.build(&[b"h2", b"http/1.1"])
            .context("invalid --remote-write.server-tls-* flags")?;
    }
    let bucket = flags.objstore.bucket_config()?;
    let hashrings = read_pair(
        "receive.hashrings",
        flags.receive_hashrings_file.as_deref(),
        flags.receive_hashrings.as_deref(),
    )?;
    read_pair(
        "receive.relabel",
        flags.receive_relabel_config_file.as_deref(),
        flags.receive_relabel_config.as_deref(),
    )?;
    read_pair(
        "receive.limits",
        flags.receive_limits_config_file.as_deref(),
        flags.receive_limits_config.as_deref(),
    )?;
    read_pair(
        "request.logging",
        flags.request_logging_config_file.as_deref(),
        flags.request_logging_config.as_deref(),
    )?;
    let mode = match (hashrings.is_some(), flags.receive_local_endpoint.is_some()) {
        (true, true) => Mode::RouterIngestor,
        (true, false) => Mode::RouterOnly,
        (false, _) => Mode::IngestorOnly,
    };
    tracing::info!(
        mode = ?mode,
        labels = labels.len(),
        upload = bucket.is_some(),
        "receive flags validated"
    );
    Err(crate::not_implemented())
}
