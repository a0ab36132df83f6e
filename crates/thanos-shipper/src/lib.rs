//! Thanos block shipper: uploads the blocks of a local TSDB directory to object storage.
//!
//! Mirrors Thanos's `pkg/shipper` (with the upload half of `pkg/block`: `block.Upload`,
//! `GatherFileStats`). A [`Shipper`] watches one TSDB directory (for receive, one per tenant:
//! `<tsdb.path>/<tenant>/`) and, on every [`Shipper::sync`]:
//!
//! * finds block directories (`<ULID>/` with a readable `meta.json`, compaction level 1, at
//!   least one sample), oldest first;
//! * skips those recorded in the progress file `thanos.shipper.json`
//!   (`{"version": 1, "uploaded": [...]}`) or already complete in the bucket
//!   (`<ULID>/meta.json` exists), recording the latter;
//! * hard-links each new block into `thanos/upload/<ULID>/`, rewrites the linked `meta.json`
//!   with the `thanos` section (external labels, source, segment files, resolution 0, file
//!   list with sizes and optional SHA-256 hashes), uploads `chunks/*`, `index` and any other
//!   file except `tombstones`, and `meta.json` last with `upload_time` set just before;
//! * records progress atomically.
//!
//! Counters use Thanos's names (`thanos_shipper_*`, see [`ShipperMetrics`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use thanos_model::Labels;
//! use thanos_shipper::{Shipper, ShipperMetrics, ShipperOptions};
//!
//! let registry = prometheus::Registry::new();
//! let bucket = thanos_objstore::BucketConfig::parse(
//!     "type: FILESYSTEM\nconfig:\n  directory: /tmp/bucket\n",
//! )?
//! .build("receive", &registry)?;
//! let labels = Labels::from_pairs([("receive_replica", "0"), ("tenant_id", "default-tenant")]);
//! let shipper = Shipper::new(
//!     "/data/default-tenant".into(),
//!     bucket,
//!     move || labels.clone(),
//!     ShipperOptions::default(),
//!     ShipperMetrics::with_const_labels(&registry, &[("tenant", "default-tenant")])?,
//! );
//! let report = shipper.sync().await?;
//! println!("uploaded {:?}", report.uploaded);
//! # Ok(())
//! # }
//! ```

mod error;
mod metrics;
mod prepare;
mod progress;
mod shipper;

pub use error::ShipperError;
pub use metrics::{METRIC_NAMES, ShipperMetrics};
pub use prepare::HashFunc;
pub use progress::{PROGRESS_FILENAME, read_progress, write_progress};
pub use shipper::{DEFAULT_SYNC_INTERVAL, SYNC_TIMEOUT, Shipper, ShipperOptions, SyncReport};
