//! Shared helpers of the integration tests: an in-process receive server on 127.0.0.1:0
//! and remote-write request builders.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::Registry;
use thanos_proto::prometheus as pb1;
use thanos_proto::thanos::{LabelMatcher, Series, SeriesRequest, label_matcher};
use thanos_receive::{Handler, HandlerOptions, HeadOptions, MultiTsdb, ReceiveStore};
use thanos_server::Prober;
use tokio::task::JoinHandle;

/// A running receive endpoint.
pub struct TestServer {
    pub addr: SocketAddr,
    pub tsdb: Arc<MultiTsdb>,
    pub prober: Prober,
    pub registry: Registry,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(options: HandlerOptions, head: HeadOptions, ready: bool) -> Self {
        let registry = Registry::new();
        let tsdb = Arc::new(MultiTsdb::new(head, &registry).expect("tsdb metrics"));
        Self::start_with(options, tsdb, registry, ready).await
    }

    /// Serves an existing `tsdb` (e.g. one opened on disk) whose metrics are in
    /// `registry`.
    pub async fn start_with(
        options: HandlerOptions,
        tsdb: Arc<MultiTsdb>,
        registry: Registry,
        ready: bool,
    ) -> Self {
        let prober = Prober::new("receive", &registry).expect("prober");
        if ready {
            prober.ready();
        }
        let handler =
            Handler::new(options, Arc::clone(&tsdb), prober.clone(), &registry).expect("handler");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = handler.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self {
            addr,
            tsdb,
            prober,
            registry,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/receive", self.addr)
    }

    /// Every sample stored for `tenant`, as (labels text, t, value bits).
    pub fn dump(&self, tenant: &str) -> Vec<(String, i64, u64)> {
        let Some(head) = self.tsdb.get(tenant) else {
            return Vec::new();
        };
        head.select(&[], i64::MIN, i64::MAX)
            .iter()
            .flat_map(|s| {
                let l = s.labels.to_string();
                s.samples()
                    .map(move |x| (l.clone(), x.t, x.v.to_bits()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after epoch")
        .as_millis() as i64
}

pub fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> pb1::TimeSeries {
    pb1::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| pb1::Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| pb1::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

pub fn v1_body(series: Vec<pb1::TimeSeries>) -> Vec<u8> {
    thanos_proto::remote_write::encode(&pb1::WriteRequest {
        timeseries: series,
        metadata: vec![],
    })
    .expect("encode")
    .to_vec()
}

/// What the StoreAPI of `tsdb` (external label `replica="r0"`, tenant label `tenant_id`,
/// both removed again as replica labels) answers for `name="value"` over all time.
pub fn store_series(tsdb: &Arc<MultiTsdb>, name: &str, value: &str) -> Vec<Series> {
    let store = ReceiveStore::new([("replica", "r0")], "tenant_id");
    assert!(store.attach(Arc::clone(tsdb)));
    let req = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![LabelMatcher {
            r#type: label_matcher::Type::Eq as i32,
            name: name.into(),
            value: value.into(),
        }],
        without_replica_labels: vec!["replica".into(), "tenant_id".into()],
        ..SeriesRequest::default()
    };
    store.series_blocking(&req).expect("series")
}
