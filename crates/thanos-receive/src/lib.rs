//! Thanos receive: the remote-write ingest path, the per-tenant heads and their blocks.
//!
//! Mirrors Thanos `pkg/receive` (`handler.go`: the `POST /api/v1/receive` endpoint and its
//! status codes; `multitsdb.go`: one TSDB per tenant; `writer.go`: per-series validation
//! and append) and Prometheus `tsdb/head` (series, XOR chunks, append rules), pinned to
//! thanos-io/thanos `e103a81bd594` and prometheus/prometheus `d15adb9ad7e5`.
//!
//! * [`write`](mod@write) decodes remote write 1.0 and 2.0 bodies (snappy-bomb safe,
//!   size and count limits) and validates every series into a [`Batch`];
//! * [`head`] stores float samples in XOR chunks and native histograms ([`histogram`]) in
//!   histogram / float histogram chunks per series with Prometheus's append rules
//!   (out-of-order and conflicting duplicates rejected as 409, never dropped silently;
//!   far-future samples rejected without changing any state; a new chunk on every
//!   sample-type change and histogram counter reset) and answers `select` /
//!   `label_names` / `label_values`;
//! * [`multitsdb`] keeps one [`Tenant`] (head + local blocks) per tenant;
//! * [`tenant`] cuts a head into Prometheus blocks (`<tsdb.path>/<tenant>/<ULID>/`,
//!   compaction level 1, `thanos.source: receive`) when it spans more than 1.5 block
//!   durations, or entirely on flush; then truncates the head and checkpoints the WAL, in
//!   a crash-safe order; and deletes blocks beyond the retention (Prometheus `tsdb/db.go`
//!   head compaction and time retention);
//! * [`handler`] is the axum endpoint, mapping every error through
//!   [`thanos_server::ErrorKind`]; [`writeable`] is `thanos.WriteableStore/RemoteWrite`
//!   (accepting Thanos's framed-snappy gRPC compression, [`grpc_snappy`]); both hand
//!   their writes to a [`Distributor`] ([`forward`]): the [`LocalWriter`] in
//!   IngestorOnly mode, replication by the [`hashring`] with per-series quorum and
//!   forwarding to peers over gRPC in router modes;
//! * [`reload`] holds the current hashring and reloads `--receive.hashrings-file` on
//!   change without flushing heads or turning unready;
//! * [`limits`] is `--receive.limits-config`: per-tenant request limits (413), the write
//!   gate and active-series limits fed by a meta-monitoring Prometheus (429), reloaded
//!   every `--receive.limits-config-reload-timer`.
//!
//! * [`wal`](mod@wal) replays a tenant's Prometheus-format WAL into its head on start,
//!   repairs a torn tail and attaches the log: from then on [`Head::append_batch`], the
//!   single write entry point, logs and fsyncs (group commit) every batch before a request
//!   is acknowledged.
//!
//! * [`store`](mod@store) serves `thanos.Store` and `thanos.info.Info` over the tenant
//!   blocks and heads ([`ReceiveStore`]), each tenant labelled with the `--label`s plus
//!   its tenant label.
//!
//! Uploading blocks is the `thanos-shipper` crate's job; `thanos receive` wires the two.

pub mod error;
pub mod forward;
pub mod grpc_snappy;
pub mod handler;
pub mod hashring;
pub mod head;
pub mod histogram;
pub mod limits;
pub mod multitsdb;
pub mod reload;
pub mod store;
pub mod tenant;
pub mod wal;
mod wire;
pub mod write;
pub mod writeable;
pub mod writer;

pub use error::{Reason, Rejections, ReplicationFailure, WriteError};
pub use forward::{Compression, Distributor, GrpcPeers, Peers, RouterOptions};
pub use handler::{Handler, HandlerOptions};
pub use head::{
    AppendError, AppendReport, ChunkMeta, Head, HeadMetrics, HeadOptions, HeadSeries, TruncateStats,
};
pub use histogram::{HistogramSample, HistogramValue};
pub use limits::{Limiter, LimitsConfig, LimitsReloader, MetaMonitoring};
pub use multitsdb::{MultiTsdb, Storage};
pub use reload::{HashringReloader, RingMetrics, SharedHashring};
pub use store::{ReceiveStore, StoreError};
pub use tenant::{BlockError, Tenant};
pub use write::{Batch, Protocol, SeriesSamples, WriteLimits};
pub use writeable::WriteableService;
pub use writer::{LocalWriter, Written};
