//! Fake StoreAPI servers (real tonic over 127.0.0.1) and a querier harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use thanos_model::matcher::matches_labels;
use thanos_model::{Labels, Sample, XorChunk};
use thanos_proto::storepb::SeriesStream;
use thanos_proto::thanos::info::info_server::{Info, InfoServer};
use thanos_proto::thanos::info::{InfoRequest, InfoResponse, StoreInfo};
use thanos_proto::thanos::metadata_server::{Metadata, MetadataServer};
use thanos_proto::thanos::metric_metadata_response::Result as MetaFrame;
use thanos_proto::thanos::series_response::Result as Frame;
use thanos_proto::thanos::store_server::{Store, StoreServer};
use thanos_proto::thanos::{
    AggrChunk, Chunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, Meta, MetricMetadata, MetricMetadataEntry, MetricMetadataRequest,
    MetricMetadataResponse, Series, SeriesRequest, SeriesResponse, ZLabelSet,
};
use thanos_query::proxy::{labels_to_proto, matchers_from_proto};
use thanos_query::{Querier, QuerierOptions};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Samples per encoded chunk.
const CHUNK_SAMPLES: usize = 4;

/// A fake store holding fixed series.
#[derive(Clone, Default)]
pub struct FakeStore {
    pub external: Labels,
    pub series: Vec<(Labels, Vec<Sample>)>,
    /// Honour `without_replica_labels` (and advertise it).
    pub strips_replica_labels: bool,
    /// Delay before answering Series / label calls (a "hanging" store).
    pub delay: Option<Duration>,
    /// Metric metadata served (and advertised) when not empty.
    pub metadata: Vec<(String, Meta)>,
}

impl FakeStore {
    pub fn new(external: Labels) -> Self {
        Self {
            external,
            strips_replica_labels: true,
            ..Self::default()
        }
    }

    pub fn with_series(mut self, labels: Labels, samples: Vec<Sample>) -> Self {
        self.series.push((labels, samples));
        self
    }

    fn full_labels(&self, l: &Labels) -> Labels {
        let mut b = l.builder();
        for e in &self.external {
            b.set(e.name.clone(), e.value.clone());
        }
        b.build()
    }

    fn select(
        &self,
        matchers: &[thanos_model::Matcher],
        strip: &[String],
    ) -> Vec<(Labels, Vec<Sample>)> {
        let mut out: Vec<(Labels, Vec<Sample>)> = self
            .series
            .iter()
            .map(|(l, s)| (self.full_labels(l), s.clone()))
            .filter(|(l, _)| matches_labels(matchers, l))
            .map(|(l, s)| {
                if self.strips_replica_labels {
                    let mut b = l.builder();
                    for r in strip {
                        b.del(r);
                    }
                    (b.build(), s)
                } else {
                    (l, s)
                }
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn min_max(&self) -> (i64, i64) {
        let ts = self.series.iter().flat_map(|(_, s)| s.iter().map(|x| x.t));
        let min = ts.clone().min().unwrap_or(i64::MAX);
        let max = ts.max().unwrap_or(i64::MIN);
        (min, max)
    }

    /// Serves Store + Info on 127.0.0.1:0 (or `addr`) until `stop` is cancelled.
    pub async fn serve_on(self, listener: TcpListener, stop: CancellationToken) -> SocketAddr {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(self);
        let server = tonic::transport::Server::builder()
            .add_service(StoreServer::new(FakeSvc(shared.clone())))
            .add_service(InfoServer::new(FakeSvc(shared.clone())))
            .add_service(MetadataServer::new(FakeSvc(shared)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.cancelled_owned());
        tokio::spawn(server);
        addr
    }

    pub async fn serve(self) -> (SocketAddr, CancellationToken) {
        let stop = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = self.serve_on(listener, stop.clone()).await;
        (addr, stop)
    }
}

fn encode(samples: &[Sample], mint: i64, maxt: i64) -> Vec<AggrChunk> {
    samples
        .chunks(CHUNK_SAMPLES)
        .filter(|c| c.last().unwrap().t >= mint && c[0].t <= maxt)
        .map(|c| {
            let mut x = XorChunk::new();
            for s in c {
                x.append(s.t, s.v);
            }
            AggrChunk {
                min_time: c[0].t,
                max_time: c.last().unwrap().t,
                raw: Some(Chunk {
                    r#type: 0,
                    hash: xxhash_rust::xxh64::xxh64(x.bytes(), 0),
                    data: bytes::Bytes::copy_from_slice(x.bytes()),
                }),
                ..AggrChunk::default()
            }
        })
        .collect()
}

struct FakeSvc(Arc<FakeStore>);

#[tonic::async_trait]
impl Store for FakeSvc {
    type SeriesStream = SeriesStream;

    async fn series(&self, req: Request<SeriesRequest>) -> Result<Response<SeriesStream>, Status> {
        if let Some(d) = self.0.delay {
            tokio::time::sleep(d).await;
        }
        let req = req.into_inner();
        let ms = matchers_from_proto(&req.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let frames: Vec<Result<SeriesResponse, Status>> = self
            .0
            .select(&ms, &req.without_replica_labels)
            .into_iter()
            .filter_map(|(l, s)| {
                let chunks = if req.skip_chunks {
                    Vec::new()
                } else {
                    encode(&s, req.min_time, req.max_time)
                };
                (req.skip_chunks || !chunks.is_empty()).then(|| {
                    Ok(SeriesResponse {
                        result: Some(Frame::Series(Series {
                            labels: labels_to_proto(&l),
                            chunks,
                        })),
                    })
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(frames))))
    }

    async fn label_names(
        &self,
        req: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        if let Some(d) = self.0.delay {
            tokio::time::sleep(d).await;
        }
        let req = req.into_inner();
        let ms = matchers_from_proto(&req.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut names: Vec<String> = self
            .0
            .select(&ms, &req.without_replica_labels)
            .iter()
            .flat_map(|(l, _)| l.iter().map(|x| x.name.to_string()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(Response::new(LabelNamesResponse {
            names,
            ..LabelNamesResponse::default()
        }))
    }

    async fn label_values(
        &self,
        req: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        if let Some(d) = self.0.delay {
            tokio::time::sleep(d).await;
        }
        let req = req.into_inner();
        let ms = matchers_from_proto(&req.matchers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut values: Vec<String> = self
            .0
            .select(&ms, &req.without_replica_labels)
            .iter()
            .filter_map(|(l, _)| l.get(&req.label).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        Ok(Response::new(LabelValuesResponse {
            values,
            ..LabelValuesResponse::default()
        }))
    }
}

type MetadataStream = Pin<Box<dyn Stream<Item = Result<MetricMetadataResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Metadata for FakeSvc {
    type MetricMetadataStream = MetadataStream;

    async fn metric_metadata(
        &self,
        req: Request<MetricMetadataRequest>,
    ) -> Result<Response<MetadataStream>, Status> {
        let req = req.into_inner();
        let mut m = MetricMetadata::default();
        for (name, meta) in &self.0.metadata {
            if req.metric.is_empty() || req.metric == *name {
                m.metadata
                    .entry(name.clone())
                    .or_insert_with(MetricMetadataEntry::default)
                    .metas
                    .push(meta.clone());
            }
        }
        let frame = MetricMetadataResponse {
            result: Some(MetaFrame::Metadata(m)),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(frame)]))))
    }
}

#[tonic::async_trait]
impl Info for FakeSvc {
    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let (min_time, max_time) = self.0.min_max();
        Ok(Response::new(InfoResponse {
            label_sets: vec![ZLabelSet {
                labels: labels_to_proto(&self.0.external),
            }],
            component_type: "store".into(),
            metric_metadata: (!self.0.metadata.is_empty())
                .then_some(thanos_proto::thanos::info::MetricMetadataInfo {}),
            store: Some(StoreInfo {
                min_time,
                max_time,
                supports_without_replica_labels: self.0.strips_replica_labels,
                ..StoreInfo::default()
            }),
            ..InfoResponse::default()
        }))
    }
}

/// A running querier with its HTTP address.
pub struct TestQuerier {
    pub querier: Arc<Querier>,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub stop: CancellationToken,
}

impl TestQuerier {
    pub async fn start(options: QuerierOptions) -> Self {
        let registry = prometheus::Registry::new();
        let querier = Arc::new(Querier::new(options, &registry).unwrap());
        querier.endpoints().update().await;
        let stop = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let app = querier.router();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(s.cancelled_owned())
                .await
                .unwrap();
        });
        let glistener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = glistener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(querier.store_service())
            .add_service(querier.info_service())
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(glistener),
                stop.clone().cancelled_owned(),
            );
        tokio::spawn(server);
        Self {
            querier,
            http,
            grpc,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, serde_json::Value) {
        let resp = reqwest::get(self.url(path_and_query)).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
        )
    }

    pub async fn get_text(&self, path_and_query: &str) -> (u16, String) {
        let resp = reqwest::get(self.url(path_and_query)).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl Drop for TestQuerier {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Samples every `step` ms from `start` to `end` inclusive, value = f(t).
pub fn samples(start: i64, end: i64, step: i64, f: impl Fn(i64) -> f64) -> Vec<Sample> {
    (0..)
        .map(|i| start + i * step)
        .take_while(|t| *t <= end)
        .map(|t| Sample::new(t, f(t)))
        .collect()
}
