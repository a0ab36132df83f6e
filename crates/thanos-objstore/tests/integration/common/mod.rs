//! Helpers shared by the integration tests.

#![allow(dead_code)]

use prometheus::Registry;
use prometheus::proto::MetricType;

/// Value of a counter or gauge series, or the sample count of a histogram series; `None` when
/// the series does not exist.
pub fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let matches = labels.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if !matches {
                continue;
            }
            return match family.get_field_type() {
                MetricType::COUNTER => Some(m.get_counter().get_value()),
                MetricType::GAUGE => Some(m.get_gauge().get_value()),
                MetricType::HISTOGRAM => Some(m.get_histogram().get_sample_count() as f64),
                _ => None,
            };
        }
    }
    None
}

/// `thanos_objstore_bucket_operations_total` for one operation.
pub fn ops(registry: &Registry, bucket: &str, op: &str) -> f64 {
    metric(
        registry,
        "thanos_objstore_bucket_operations_total",
        &[("bucket", bucket), ("operation", op)],
    )
    .unwrap_or(-1.0)
}

/// `thanos_objstore_bucket_operation_failures_total` for one operation.
pub fn failures(registry: &Registry, bucket: &str, op: &str) -> f64 {
    metric(
        registry,
        "thanos_objstore_bucket_operation_failures_total",
        &[("bucket", bucket), ("operation", op)],
    )
    .unwrap_or(-1.0)
}
