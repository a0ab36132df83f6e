//! Receive hashrings: which receiver stores which replica of a series.
//!
//! Mirrors Thanos `pkg/receive/hashring.go` and `pkg/receive/config.go`:
//!
//! * [`config`](mod@config) parses the hashrings JSON file ([`LoadedConfig`],
//!   [`HashringConfig`], [`Endpoint`]) and computes `thanos_receive_config_hash`
//!   ([`config_hash`]);
//! * [`HashmodHashring`] and [`KetamaHashring`] are the two placement algorithms behind
//!   the [`Hashring`] trait;
//! * [`MultiHashring`] routes each tenant to the first matching hashring of the file
//!   (exact names or [`GlobPattern`]s);
//! * [`quorum`] holds the write quorum and the per-series error classification used to
//!   pick the status code of a replicated write.
//!
//! The series hash of both algorithms is [`Labels::hash_with_prefix`] with the tenant:
//! `xxhash64(tenant 0xff name 0xff value 0xff …)` over the sorted labels.
//!
//! Differences from Thanos, all on configurations Thanos mishandles: a hashring with fewer
//! endpoints than the replication factor is rejected at load time for both algorithms
//! (Thanos's hashmod accepts it and fails every write); ketama rings whose availability
//! zones cannot be balanced are built instead of hanging (see [`KetamaHashring`]);
//! unknown `tenant_matcher_type` values and malformed glob patterns are rejected instead
//! of silently matching nothing; active shuffle sharding is refused
//! ([`RingError::ShuffleShardingUnsupported`]) rather than routed differently from Thanos.

pub mod config;
mod glob;
mod hashmod;
mod ketama;
mod multi;
pub mod quorum;

use thanos_model::Labels;
use thiserror::Error;

pub use config::{
    Algorithm, ConfigError, DEFAULT_CAPNPROTO_PORT, Endpoint, HashringConfig, LoadedConfig,
    RingError, ShardSizeOverride, ShuffleShardingConfig, TenantMatcherType, UnknownAlgorithm,
    config_hash, parse_config,
};
pub use glob::{GlobError, GlobPattern};
pub use hashmod::HashmodHashring;
pub use ketama::{KetamaHashring, SECTIONS_PER_NODE};
pub use multi::MultiHashring;

/// Errors looking up the endpoint of a series.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HashringError {
    /// Replica `want - 1` was requested from a ring of `have` endpoints.
    #[error("insufficient nodes; have {have}, want {want}")]
    InsufficientNodes {
        /// Endpoints in the ring.
        have: u64,
        /// Endpoints needed for the requested replica.
        want: u64,
    },
    /// A ketama ring only precomputes `replication_factor` replicas per section.
    #[error("replica {replica} out of range for replication factor {replication_factor}")]
    ReplicaOutOfRange {
        /// Requested replica index (0-based).
        replica: u64,
        /// Replication factor the ring was built for.
        replication_factor: u64,
    },
    /// No hashring lists the tenant and there is no default hashring.
    #[error("no matching hashring to handle tenant {tenant:?}")]
    NoMatchingHashring {
        /// The tenant.
        tenant: String,
    },
}

/// Places the replicas of a tenant's series on endpoints.
pub trait Hashring: Send + Sync {
    /// The endpoint holding replica `n` (0-based) of the series `labels` of `tenant`.
    fn get_n(&self, tenant: &str, labels: &Labels, n: u64) -> Result<&Endpoint, HashringError>;

    /// The endpoints of the ring.
    fn nodes(&self) -> &[Endpoint];
}
