//! The registry of per-tenant heads (mirrors Thanos `pkg/receive/multitsdb.go`).
//!
//! Tenants are created lazily on their first write. With [`Storage`] configured, each
//! tenant lives in `<tsdb.path>/<tenant>/` with its WAL in `wal/`; [`MultiTsdb::open`]
//! replays every existing tenant directory before returning, so a receiver reports ready
//! only after replay. A tenant name becomes a directory name, so it must be a single path
//! element (components.md §3.4 step 1).
//!
//! Persisted tenants also hold local blocks (`<tsdb.path>/<tenant>/<ULID>/`), opened
//! before the WAL is replayed; [`MultiTsdb::compact`], [`MultiTsdb::flush`] and
//! [`MultiTsdb::apply_retention`] cut the heads into blocks and delete old blocks (see
//! [`crate::tenant`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use thanos_model::Labels;
use thanos_tsdb::meta::{BlockMeta, ThanosMeta};
use ulid::Ulid;

use thanos_wal::wlog::WalOptions;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::error::WriteError;
use crate::head::{Head, HeadMetrics, HeadOptions};
use crate::tenant::{BlockError, Tenant, thanos_meta};
use crate::wal::{self, OpenError, ReplayStats};

/// Where tenant heads are persisted.
#[derive(Debug, Clone)]
pub struct Storage {
    /// `--tsdb.path`: one directory per tenant below it.
    pub dir: PathBuf,
    /// WAL writer settings (`--tsdb.wal-compression` selects the compression).
    pub wal: WalOptions,
}

impl Storage {
    /// The directory of `tenant`: `<dir>/<tenant>`.
    pub fn tenant_dir(&self, tenant: &str) -> PathBuf {
        self.dir.join(tenant)
    }

    /// The WAL directory of `tenant`: `<dir>/<tenant>/wal`.
    pub fn wal_dir(&self, tenant: &str) -> PathBuf {
        self.tenant_dir(tenant).join("wal")
    }
}

/// Checks that `tenant` is a single, non-empty path element: no `/` or `\`, no NUL, not
/// `.` or `..`.
pub fn validate_tenant(tenant: &str) -> Result<(), WriteError> {
    let bad =
        tenant.is_empty() || tenant == "." || tenant == ".." || tenant.contains(['/', '\\', '\0']);
    if bad {
        return Err(WriteError::InvalidTenant {
            tenant: tenant.to_owned(),
        });
    }
    Ok(())
}

struct TsdbMetrics {
    series: IntGaugeVec,
    series_created: IntCounterVec,
    chunks_created: IntCounterVec,
    samples_appended: IntCounterVec,
    out_of_order: IntCounterVec,
    out_of_bounds: IntCounterVec,
}

impl TsdbMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        fn counter(
            registry: &Registry,
            name: &str,
            help: &str,
            labels: &[&str],
        ) -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        }
        let series = IntGaugeVec::new(
            Opts::new(
                "prometheus_tsdb_head_series",
                "Total number of series in the head block.",
            ),
            &["tenant"],
        )?;
        registry.register(Box::new(series.clone()))?;
        Ok(Self {
            series,
            series_created: counter(
                registry,
                "prometheus_tsdb_head_series_created_total",
                "Total number of series created in the head",
                &["tenant"],
            )?,
            chunks_created: counter(
                registry,
                "prometheus_tsdb_head_chunks_created_total",
                "Total number of chunks created in the head",
                &["tenant"],
            )?,
            samples_appended: counter(
                registry,
                "prometheus_tsdb_head_samples_appended_total",
                "Total number of appended samples.",
                &["tenant", "type"],
            )?,
            out_of_order: counter(
                registry,
                "prometheus_tsdb_out_of_order_samples_total",
                "Total number of out of order samples ingestion failed attempts due to out of order being disabled.",
                &["tenant", "type"],
            )?,
            out_of_bounds: counter(
                registry,
                "prometheus_tsdb_out_of_bounds_samples_total",
                "Total number of out of bound samples ingestion failed attempts with out of order support disabled.",
                &["tenant", "type"],
            )?,
        })
    }

    fn for_tenant(&self, tenant: &str) -> HeadMetrics {
        HeadMetrics {
            series: self.series.with_label_values(&[tenant]),
            series_created: self.series_created.with_label_values(&[tenant]),
            chunks_created: self.chunks_created.with_label_values(&[tenant]),
            samples_appended: self.samples_appended.with_label_values(&[tenant, "float"]),
            histograms_appended: self
                .samples_appended
                .with_label_values(&[tenant, "histogram"]),
            out_of_order: self.out_of_order.with_label_values(&[tenant, "float"]),
            out_of_bounds: self.out_of_bounds.with_label_values(&[tenant, "float"]),
        }
    }
}

/// Per-tenant heads, created on first use.
pub struct MultiTsdb {
    options: HeadOptions,
    storage: Option<Storage>,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    metrics: TsdbMetrics,
    /// External labels and tenant label name written into new blocks' `thanos` section.
    block_labels: RwLock<Option<(Labels, String)>>,
}

impl std::fmt::Debug for MultiTsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiTsdb")
            .field("options", &self.options)
            .field("tenants", &self.tenants())
            .finish()
    }
}

impl MultiTsdb {
    /// An empty, in-memory registry whose heads use `options` (no WAL); registers the
    /// per-tenant `prometheus_tsdb_*` metrics (label `tenant`) on `registry`.
    pub fn new(options: HeadOptions, registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(Self {
            options,
            storage: None,
            tenants: RwLock::default(),
            metrics: TsdbMetrics::new(registry)?,
            block_labels: RwLock::default(),
        })
    }

    /// A registry persisted in `storage`: every tenant directory already present (one
    /// holding a `wal/` directory) gets its blocks opened, then its WAL replayed (samples
    /// below the newest block's max time skipped) and attached before this returns; new
    /// tenants get a WAL on first write. Blocking (replay reads every segment): call it
    /// from a blocking thread. Returns the replay statistics per tenant.
    pub fn open(
        options: HeadOptions,
        storage: Storage,
        registry: &Registry,
    ) -> Result<(Self, Vec<(String, ReplayStats)>), OpenError> {
        let metrics = TsdbMetrics::new(registry)?;
        std::fs::create_dir_all(&storage.dir).map_err(|source| OpenError::CreateDir {
            dir: storage.dir.clone(),
            source,
        })?;
        let read_err = |source| OpenError::ListTenants {
            dir: storage.dir.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&storage.dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_tenant(&name).is_ok() && entry.path().join("wal").is_dir() {
                names.push(name);
            }
        }
        names.sort_unstable();
        let tsdb = Self {
            options,
            storage: Some(storage),
            tenants: RwLock::default(),
            metrics,
            block_labels: RwLock::default(),
        };
        // Tenants replay side by side, splitting the cores between them.
        let cores = wal::default_workers();
        let parallel = names.len().clamp(1, cores);
        let workers = (cores / parallel).max(1);
        let mut opened = Vec::with_capacity(names.len());
        for group in names.chunks(parallel) {
            let results: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .map(|name| scope.spawn(|| tsdb.create_tenant(name, workers)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            for (name, result) in group.iter().zip(results) {
                opened.push((name.clone(), result?));
            }
        }
        let mut stats = Vec::with_capacity(opened.len());
        {
            let mut tenants = tsdb.tenants.write().unwrap_or_else(PoisonError::into_inner);
            for (name, (tenant, s)) in opened {
                tenants.insert(name.clone(), tenant);
                stats.push((name, s));
            }
        }
        Ok((tsdb, stats))
    }

    /// A new tenant: in memory, or with its blocks opened and its WAL replayed and
    /// attached when persisted.
    /// `workers` threads replay its WAL.
    fn create_tenant(
        &self,
        name: &str,
        workers: usize,
    ) -> Result<(Arc<Tenant>, ReplayStats), OpenError> {
        let head = Head::new(self.options, self.metrics.for_tenant(name));
        let Some(storage) = &self.storage else {
            return Ok((
                Arc::new(Tenant::in_memory(name, head)),
                ReplayStats::default(),
            ));
        };
        let tenant = Tenant::open(
            name,
            head,
            storage.tenant_dir(name),
            storage.wal.compression,
        )?;
        let head = tenant.head();
        let stats = wal::open(head, &storage.wal_dir(name), storage.wal.clone(), workers)?;
        if stats.samples_in_blocks > 0 {
            // Series whose samples all live in blocks are left empty by the replay.
            head.truncate(head.min_valid_time());
        }
        Ok((Arc::new(tenant), stats))
    }

    /// The head of `tenant`, creating it if needed; fails for invalid tenant names.
    pub fn tenant_head(&self, tenant: &str) -> Result<Arc<Head>, WriteError> {
        if let Some(head) = self.get(tenant) {
            return Ok(head);
        }
        validate_tenant(tenant)?;
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = tenants.get(tenant) {
            return Ok(Arc::clone(t.head()));
        }
        tracing::info!(tenant, "creating tenant head");
        // A tenant first seen now has no WAL to replay: one replay worker is enough.
        let (t, _) = self
            .create_tenant(tenant, 1)
            .map_err(|e| WriteError::Storage {
                tenant: tenant.to_owned(),
                reason: e.to_string(),
            })?;
        let head = Arc::clone(t.head());
        tenants.insert(tenant.to_owned(), t);
        Ok(head)
    }

    /// The head of `tenant` if it exists.
    pub fn get(&self, tenant: &str) -> Option<Arc<Head>> {
        self.tenant(tenant).map(|t| Arc::clone(t.head()))
    }

    /// The tenant (head and blocks) if it exists.
    pub fn tenant(&self, tenant: &str) -> Option<Arc<Tenant>> {
        self.tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    /// Every tenant, in name order.
    pub fn all_tenants(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<Arc<Tenant>> = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Writes `thanos.labels` (`external` plus `<tenant_label_name>=<tenant>`) and
    /// `thanos.source: receive` into the `meta.json` of the blocks cut from now on.
    pub fn set_block_labels(&self, external: Labels, tenant_label_name: &str) {
        *self
            .block_labels
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((external, tenant_label_name.to_owned()));
    }

    /// The `thanos` section for the blocks of `tenant`, if labels were set.
    fn thanos_meta(&self, tenant: &str) -> Option<ThanosMeta> {
        let guard = self
            .block_labels
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let (external, tenant_label) = guard.as_ref()?;
        let mut labels: BTreeMap<String, String> = external
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        labels.insert(tenant_label.clone(), tenant.to_owned());
        Some(thanos_meta(labels))
    }

    /// Runs the head compaction of every tenant ([`Tenant::compact`]): cuts blocks while
    /// a head spans more than 1.5 block durations. Returns the blocks written per tenant;
    /// stops at the first error. Blocking.
    pub fn compact(&self) -> Result<Vec<(String, BlockMeta)>, BlockError> {
        self.each_tenant(|t, meta| t.compact(meta))
    }

    /// Cuts every tenant's whole head into blocks ([`Tenant::flush`]); for shutdown and
    /// hashring changes, after writes stopped. Tries every tenant and returns the first
    /// error, if any. Blocking.
    pub fn flush(&self) -> Result<Vec<(String, BlockMeta)>, BlockError> {
        let mut out = Vec::new();
        let mut first_err = None;
        for t in self.all_tenants() {
            let meta = self.thanos_meta(t.name());
            match t.flush(meta.as_ref()) {
                Ok(metas) => out.extend(metas.into_iter().map(|m| (t.name().to_owned(), m))),
                Err(e) => {
                    tracing::error!(tenant = t.name(), err = %e, "flush tenant head");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn each_tenant(
        &self,
        mut f: impl FnMut(&Tenant, Option<&ThanosMeta>) -> Result<Vec<BlockMeta>, BlockError>,
    ) -> Result<Vec<(String, BlockMeta)>, BlockError> {
        let mut out = Vec::new();
        for t in self.all_tenants() {
            let meta = self.thanos_meta(t.name());
            for m in f(&t, meta.as_ref())? {
                out.push((t.name().to_owned(), m));
            }
        }
        Ok(out)
    }

    /// Deletes every tenant's blocks beyond `retention_ms` ([`Tenant::apply_retention`])
    /// for which `deletable(tenant, block)` holds. Returns the deleted blocks. Blocking.
    pub fn apply_retention(
        &self,
        retention_ms: i64,
        deletable: &dyn Fn(&str, Ulid) -> bool,
    ) -> Result<Vec<(String, Ulid)>, BlockError> {
        let mut out = Vec::new();
        for t in self.all_tenants() {
            let name = t.name().to_owned();
            for id in t.apply_retention(retention_ms, &|id| deletable(&name, id))? {
                out.push((name.clone(), id));
            }
        }
        Ok(out)
    }

    /// Names of the existing tenants, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tenants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_must_be_single_path_elements() {
        for bad in [
            "",
            ".",
            "..",
            "/etc/foo",
            "./../../x",
            "///",
            "a/b",
            "a\\b",
            "a\0",
        ] {
            assert!(validate_tenant(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["default-tenant", "team_a", "a.b", "..a", "x y"] {
            validate_tenant(good).expect(good);
        }
    }

    #[test]
    fn heads_are_created_lazily_and_shared() {
        let registry = Registry::new();
        let tsdb = MultiTsdb::new(HeadOptions::default(), &registry).expect("metrics");
        assert!(tsdb.get("a").is_none());
        let a = tsdb.tenant_head("a").expect("valid");
        let again = tsdb.tenant_head("a").expect("valid");
        assert!(Arc::ptr_eq(&a, &again));
        tsdb.tenant_head("b").expect("valid");
        assert!(tsdb.tenant_head("../x").is_err());
        assert_eq!(tsdb.tenants(), ["a", "b"]);
        // Registering twice on one registry fails loudly instead of sharing metrics.
        assert!(MultiTsdb::new(HeadOptions::default(), &registry).is_err());
    }
}
