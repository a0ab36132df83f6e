//! StoreAPI limits flags (components.md §1.4).

use clap::Args;

/// `--store.limits.request-series`, `--store.limits.request-samples`.
#[derive(Debug, Clone, Args)]
pub struct StoreLimitsFlags {
    /// The maximum series allowed in a single Series request (0 = unlimited).
    #[arg(
        id = "store.limits.request-series",
        long = "store.limits.request-series",
        default_value = "0"
    )]
    pub request_series: u64,

    /// The maximum samples allowed in a single Series request (0 = unlimited); enforced as
    /// a chunk limit of samples/120.
    #[arg(
        id = "store.limits.request-samples",
        long = "store.limits.request-samples",
        default_value = "0"
    )]
    pub request_samples: u64,
}
