//! Thanos receive: the remote-write ingest path and the per-tenant in-memory heads.
//!
//! Mirrors Thanos `pkg/receive` (`handler.go`: the `POST /api/v1/receive` endpoint and its
//! status codes; `multitsdb.go`: one TSDB per tenant; `writer.go`: per-series validation
//! and append) and Prometheus `tsdb/head` (series, XOR chunks, append rules), pinned to
//! thanos-io/thanos `e103a81bd594` and prometheus/prometheus `d15adb9ad7e5`.
//!
//! * [`write`](mod@write) decodes remote write 1.0 and 2.0 bodies (snappy-bomb safe,
//!   size and count limits) and validates every series into a [`Batch`];
//! * [`head`] stores float samples in XOR chunks per series with Prometheus's append
//!   rules (out-of-order and conflicting duplicates rejected as 409, never dropped
//!   silently; far-future samples rejected without changing any state) and answers
//!   `select` / `label_names` / `label_values`;
//! * [`multitsdb`] keeps one head per tenant;
//! * [`handler`] is the axum endpoint, mapping every error through
//!   [`thanos_server::ErrorKind`].
//!
//! * [`wal`](mod@wal) replays a tenant's Prometheus-format WAL into its head on start,
//!   repairs a torn tail and attaches the log: from then on [`Head::append_batch`], the
//!   single write entry point, logs and fsyncs (group commit) every batch before a request
//!   is acknowledged.
//!
//! * [`store`](mod@store) serves `thanos.Store` and `thanos.info.Info` over the tenant
//!   heads ([`ReceiveStore`]), each tenant labelled with the `--label`s plus its tenant
//!   label.
//!
//! Not provided yet: cutting the head into blocks, shipping, WAL checkpoints (the WAL grows
//! until restart).

pub mod error;
pub mod handler;
pub mod hashring;
pub mod head;
pub mod multitsdb;
pub mod store;
pub mod wal;
mod wire;
pub mod write;

pub use error::{Reason, Rejections, WriteError};
pub use handler::{Handler, HandlerOptions};
pub use head::{AppendError, AppendReport, ChunkMeta, Head, HeadMetrics, HeadOptions, HeadSeries};
pub use multitsdb::{MultiTsdb, Storage};
pub use store::{ReceiveStore, StoreError};
pub use write::{Batch, Protocol, SeriesSamples, WriteLimits};
