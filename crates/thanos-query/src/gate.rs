//! The concurrent-query gate (`--query.max-concurrent`, Thanos `pkg/gate`), with its
//! `thanos_query_concurrent_gate_queries_*` metrics.

use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Limits how many queries run at once.
#[derive(Debug)]
pub struct Gate {
    semaphore: Semaphore,
    in_flight: IntGauge,
    total: IntCounter,
    wait: Histogram,
}

/// A running query's slot; frees it when dropped.
#[derive(Debug)]
pub struct GatePermit<'a> {
    _permit: Option<SemaphorePermit<'a>>,
    in_flight: &'a IntGauge,
}

impl Drop for GatePermit<'_> {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

impl Gate {
    /// A gate admitting `max` concurrent queries, registering its metrics.
    pub fn new(max: usize, registry: &Registry) -> Result<Self, prometheus::Error> {
        let max = max.max(1);
        let max_gauge = IntGauge::new(
            "thanos_query_concurrent_gate_queries_max",
            "Maximum number of concurrent queries.",
        )?;
        max_gauge.set(i64::try_from(max).unwrap_or(i64::MAX));
        let in_flight = IntGauge::new(
            "thanos_query_concurrent_gate_queries_in_flight",
            "Number of queries that are currently in flight.",
        )?;
        let total = IntCounter::new(
            "thanos_query_concurrent_gate_queries_total",
            "Total number of queries.",
        )?;
        let wait = Histogram::with_opts(
            HistogramOpts::new(
                "thanos_query_concurrent_gate_queries_duration_seconds",
                "How many seconds it took for queries to wait at the gate.",
            )
            .buckets(vec![
                0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0, 240.0,
                360.0, 720.0,
            ]),
        )?;
        registry.register(Box::new(max_gauge))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(wait.clone()))?;
        Ok(Self {
            semaphore: Semaphore::new(max),
            in_flight,
            total,
            wait,
        })
    }

    /// Waits for a free slot.
    pub async fn start(&self) -> GatePermit<'_> {
        let started = Instant::now();
        self.total.inc();
        // The semaphore is never closed, so acquiring only fails in theory.
        let permit = self.semaphore.acquire().await.ok();
        self.wait.observe(started.elapsed().as_secs_f64());
        self.in_flight.inc();
        GatePermit {
            _permit: permit,
            in_flight: &self.in_flight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_and_counts() {
        let registry = Registry::new();
        let gate = Gate::new(1, &registry).unwrap();
        let first = gate.start().await;
        assert_eq!(gate.in_flight.get(), 1);
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), gate.start()).await;
        assert!(blocked.is_err(), "second query waits");
        drop(first);
        let _second = gate.start().await;
        assert_eq!(gate.in_flight.get(), 1);
        assert_eq!(gate.total.get(), 3);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert!(names.contains(&"thanos_query_concurrent_gate_queries_max".to_owned()));
    }
}
