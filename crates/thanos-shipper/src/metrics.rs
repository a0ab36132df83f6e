//! Shipper metrics, with Thanos's names and help texts.

use prometheus::{IntCounter, Opts, Registry};

/// Counters of one shipper (Thanos `pkg/shipper` metrics).
///
/// Receive runs one shipper per tenant; give each its own constant labels
/// ([`ShipperMetrics::with_const_labels`], e.g. `tenant="<id>"`) so that they can share a
/// registry.
#[derive(Debug, Clone)]
pub struct ShipperMetrics {
    /// `thanos_shipper_dir_syncs_total`: sync attempts.
    pub(crate) dir_syncs: IntCounter,
    /// `thanos_shipper_dir_sync_failures_total`: syncs that ended with an error or with at
    /// least one block not uploaded.
    pub(crate) dir_sync_failures: IntCounter,
    /// `thanos_shipper_uploads_total`: blocks uploaded.
    pub(crate) uploads: IntCounter,
    /// `thanos_shipper_upload_failures_total`: block uploads that failed.
    pub(crate) upload_failures: IntCounter,
    /// `thanos_shipper_corrupted_blocks_total`: block directories whose meta.json is missing or
    /// unreadable.
    pub(crate) corrupted_blocks: IntCounter,
}

/// Name and help text of every shipper metric, in struct order.
pub const METRIC_NAMES: [(&str, &str); 5] = [
    (
        "thanos_shipper_dir_syncs_total",
        "Total number of dir syncs",
    ),
    (
        "thanos_shipper_dir_sync_failures_total",
        "Total number of failed dir syncs",
    ),
    (
        "thanos_shipper_uploads_total",
        "Total number of uploaded blocks",
    ),
    (
        "thanos_shipper_upload_failures_total",
        "Total number of block upload failures",
    ),
    (
        "thanos_shipper_corrupted_blocks_total",
        "Total number of corrupted blocks",
    ),
];

impl ShipperMetrics {
    /// Creates the counters and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::with_const_labels(registry, &[])
    }

    /// Creates the counters with constant labels (such as `tenant`) and registers them in
    /// `registry`. Several shippers may share a registry as long as their label values differ.
    pub fn with_const_labels(
        registry: &Registry,
        labels: &[(&str, &str)],
    ) -> Result<Self, prometheus::Error> {
        let metrics = Self::build(labels)?;
        for c in metrics.counters() {
            registry.register(Box::new(c.clone()))?;
        }
        Ok(metrics)
    }

    /// Creates counters that are not registered anywhere (tests, or when metrics are not
    /// wanted).
    pub fn unregistered() -> Self {
        match Self::build(&[]) {
            Ok(m) => m,
            // The names and help texts are constants that form valid descriptors.
            Err(err) => unreachable!("invalid shipper metric descriptor: {err}"),
        }
    }

    /// Removes these counters from `registry` (e.g. when a tenant is pruned), so that a later
    /// shipper with the same labels can register again.
    pub fn unregister(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        for c in self.counters() {
            registry.unregister(Box::new(c.clone()))?;
        }
        Ok(())
    }

    fn build(labels: &[(&str, &str)]) -> Result<Self, prometheus::Error> {
        let counter = |idx: usize| {
            let (name, help) = METRIC_NAMES[idx];
            let mut opts = Opts::new(name, help);
            for (k, v) in labels {
                opts = opts.const_label(*k, *v);
            }
            IntCounter::with_opts(opts)
        };
        Ok(Self {
            dir_syncs: counter(0)?,
            dir_sync_failures: counter(1)?,
            uploads: counter(2)?,
            upload_failures: counter(3)?,
            corrupted_blocks: counter(4)?,
        })
    }

    fn counters(&self) -> [&IntCounter; 5] {
        [
            &self.dir_syncs,
            &self.dir_sync_failures,
            &self.uploads,
            &self.upload_failures,
            &self.corrupted_blocks,
        ]
    }

    /// Current value of `thanos_shipper_dir_syncs_total`.
    pub fn dir_syncs(&self) -> u64 {
        self.dir_syncs.get()
    }

    /// Current value of `thanos_shipper_dir_sync_failures_total`.
    pub fn dir_sync_failures(&self) -> u64 {
        self.dir_sync_failures.get()
    }

    /// Current value of `thanos_shipper_uploads_total`.
    pub fn uploads(&self) -> u64 {
        self.uploads.get()
    }

    /// Current value of `thanos_shipper_upload_failures_total`.
    pub fn upload_failures(&self) -> u64 {
        self.upload_failures.get()
    }

    /// Current value of `thanos_shipper_corrupted_blocks_total`.
    pub fn corrupted_blocks(&self) -> u64 {
        self.corrupted_blocks.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_thanos_names_and_allows_per_tenant_labels() {
        let reg = Registry::new();
        let a = ShipperMetrics::with_const_labels(&reg, &[("tenant", "a")]).unwrap();
        let b = ShipperMetrics::with_const_labels(&reg, &[("tenant", "b")]).unwrap();
        assert!(ShipperMetrics::with_const_labels(&reg, &[("tenant", "a")]).is_err());
        a.uploads.inc();
        b.uploads.inc_by(2);
        let families = reg.gather();
        let mut names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        let mut want: Vec<&str> = METRIC_NAMES.iter().map(|(n, _)| *n).collect();
        want.sort_unstable();
        assert_eq!(names, want);
        let uploads = families
            .iter()
            .find(|f| f.name() == "thanos_shipper_uploads_total")
            .unwrap();
        let total: f64 = uploads
            .get_metric()
            .iter()
            .map(|m| m.get_counter().get_value())
            .sum();
        assert_eq!(total, 3.0);
        a.unregister(&reg).unwrap();
        ShipperMetrics::with_const_labels(&reg, &[("tenant", "a")]).unwrap();
    }

    #[test]
    fn unregistered_counts_without_registry() {
        let m = ShipperMetrics::unregistered();
        m.corrupted_blocks.inc();
        assert_eq!(m.corrupted_blocks(), 1);
        assert_eq!(m.uploads(), 0);
    }
}
