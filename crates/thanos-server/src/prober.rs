//! Health and readiness state of a component (mirrors Thanos `pkg/prober`).
//!
//! One [`Prober`] per process is shared (cheaply cloned) by the HTTP server, which answers
//! `/-/healthy` and `/-/ready` from it, and the gRPC server, whose `grpc.health.v1.Health`
//! service reports SERVING only while the prober is ready. Every change is mirrored into the
//! `thanos_status{component, check}` gauge.

use std::sync::Arc;

use prometheus::{IntGaugeVec, Opts, Registry};
use tokio::sync::watch;

/// Snapshot of a prober's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeState {
    /// The process finished setup and is alive.
    pub healthy: bool,
    /// The component can serve traffic.
    pub ready: bool,
}

/// Shared health/readiness state; clones observe and update the same state.
#[derive(Debug, Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    component: String,
    state: watch::Sender<ProbeState>,
    status: IntGaugeVec,
}

impl Prober {
    /// Creates a prober for `component` (`receive`, `store`, `query`), not healthy and not
    /// ready, and registers `thanos_status` on `registry` with both checks at 0.
    pub fn new(component: &str, registry: &Registry) -> Result<Self, prometheus::Error> {
        let status = IntGaugeVec::new(
            Opts::new(
                "thanos_status",
                "Represents status (0 indicates failure, 1 indicates success) of the component.",
            )
            .const_label("component", component),
            &["check"],
        )?;
        registry.register(Box::new(status.clone()))?;
        status.with_label_values(&["healthy"]).set(0);
        status.with_label_values(&["ready"]).set(0);
        let (state, _) = watch::channel(ProbeState::default());
        Ok(Prober {
            inner: Arc::new(Inner {
                component: component.to_owned(),
                state,
                status,
            }),
        })
    }

    /// The component name given at construction.
    pub fn component(&self) -> &str {
        &self.inner.component
    }

    /// Current state.
    pub fn state(&self) -> ProbeState {
        *self.inner.state.borrow()
    }

    /// Whether the component is healthy.
    pub fn is_healthy(&self) -> bool {
        self.state().healthy
    }

    /// Whether the component is ready to serve traffic.
    pub fn is_ready(&self) -> bool {
        self.state().ready
    }

    /// A receiver that observes every state change.
    pub fn subscribe(&self) -> watch::Receiver<ProbeState> {
        self.inner.state.subscribe()
    }

    /// Marks the component healthy.
    pub fn healthy(&self) {
        self.update("healthy", None, |state| state.healthy = true);
    }

    /// Marks the component not healthy, logging `reason`.
    pub fn not_healthy(&self, reason: &str) {
        self.update("not-healthy", Some(reason), |state| state.healthy = false);
    }

    /// Marks the component ready to serve traffic.
    pub fn ready(&self) {
        self.update("ready", None, |state| state.ready = true);
    }

    /// Marks the component not ready, logging `reason`.
    pub fn not_ready(&self, reason: &str) {
        self.update("not-ready", Some(reason), |state| state.ready = false);
    }

    fn update(&self, label: &str, reason: Option<&str>, change: impl FnOnce(&mut ProbeState)) {
        let mut changed = false;
        self.inner.state.send_if_modified(|state| {
            let before = *state;
            change(state);
            changed = before != *state;
            changed
        });
        let state = self.state();
        self.inner
            .status
            .with_label_values(&["healthy"])
            .set(i64::from(state.healthy));
        self.inner
            .status
            .with_label_values(&["ready"])
            .set(i64::from(state.ready));
        if changed {
            match reason {
                None => {
                    tracing::info!(component = %self.inner.component, status = label, "changing probe status")
                }
                Some(reason) => {
                    tracing::warn!(component = %self.inner.component, status = label, reason, "changing probe status")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(registry: &Registry, check: &str) -> i64 {
        registry
            .gather()
            .iter()
            .find(|family| family.name() == "thanos_status")
            .and_then(|family| {
                family.get_metric().iter().find(|metric| {
                    metric
                        .get_label()
                        .iter()
                        .any(|label| label.name() == "check" && label.value() == check)
                })
            })
            .map(|metric| metric.get_gauge().get_value() as i64)
            .unwrap_or(-1)
    }

    #[test]
    fn gauges_start_at_zero_and_follow_the_state() {
        let registry = Registry::new();
        let prober = Prober::new("store", &registry).unwrap();
        assert_eq!(gauge(&registry, "healthy"), 0);
        assert_eq!(gauge(&registry, "ready"), 0);
        let clone = prober.clone();
        clone.healthy();
        clone.ready();
        assert!(prober.is_healthy() && prober.is_ready());
        assert_eq!(gauge(&registry, "healthy"), 1);
        assert_eq!(gauge(&registry, "ready"), 1);
        prober.not_ready("shutting down");
        assert!(!clone.is_ready());
        assert_eq!(gauge(&registry, "ready"), 0);
        assert_eq!(gauge(&registry, "healthy"), 1);
    }

    #[test]
    fn component_label_is_set() {
        let registry = Registry::new();
        let _prober = Prober::new("receive", &registry).unwrap();
        let families = registry.gather();
        let family = families
            .iter()
            .find(|family| family.name() == "thanos_status")
            .unwrap();
        assert_eq!(family.get_metric().len(), 2);
        for metric in family.get_metric() {
            assert!(
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == "component" && label.value() == "receive")
            );
        }
    }

    #[tokio::test]
    async fn subscribers_see_changes() {
        let prober = Prober::new("query", &Registry::new()).unwrap();
        let mut rx = prober.subscribe();
        prober.ready();
        rx.changed().await.unwrap();
        assert!(rx.borrow().ready);
    }
}
