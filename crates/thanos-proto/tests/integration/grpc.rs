//! Real gRPC round trip over 127.0.0.1 with the generated tonic servers and
//! clients: `thanos.Store` (streaming Series, unary label calls),
//! `thanos.info.Info/Info` and `thanos.WriteableStore/RemoteWrite`.

use std::net::SocketAddr;

use bytes::Bytes;
use thanos_proto::prometheus_copy;
use thanos_proto::thanos::info::info_client::InfoClient;
use thanos_proto::thanos::info::info_server::{Info, InfoServer};
use thanos_proto::thanos::info::{InfoRequest, InfoResponse, StoreInfo};
use thanos_proto::thanos::series_response::Result as SeriesResult;
use thanos_proto::thanos::store_client::StoreClient;
use thanos_proto::thanos::store_server::{Store, StoreServer};
use thanos_proto::thanos::writeable_store_client::WriteableStoreClient;
use thanos_proto::thanos::writeable_store_server::{WriteableStore, WriteableStoreServer};
use thanos_proto::thanos::{
    AggrChunk, Chunk, Label, LabelMatcher, LabelNamesRequest, LabelNamesResponse,
    LabelValuesRequest, LabelValuesResponse, Series, SeriesRequest, SeriesResponse,
    TimeSeriesTenantTuple, WriteRequest, WriteResponse, ZLabelSet, label_matcher,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

/// A store with two fixed series; the series are answered only when the
/// request carries a matcher, echoing the request time range in the chunks.
struct TestStore;

#[tonic::async_trait]
impl Store for TestStore {
    type SeriesStream = tokio_stream::Iter<std::vec::IntoIter<Result<SeriesResponse, Status>>>;

    async fn series(
        &self,
        request: Request<SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let req = request.into_inner();
        if req.matchers.is_empty() {
            return Err(Status::invalid_argument("no matchers specified"));
        }
        let frames = ["a", "b"]
            .into_iter()
            .map(|instance| {
                Ok(SeriesResponse {
                    result: Some(SeriesResult::Series(Series {
                        labels: vec![label("__name__", "up"), label("instance", instance)],
                        chunks: if req.skip_chunks {
                            vec![]
                        } else {
                            vec![AggrChunk {
                                min_time: req.min_time,
                                max_time: req.max_time,
                                raw: Some(Chunk {
                                    r#type: 0,
                                    data: Bytes::from(instance.as_bytes().repeat(3)),
                                    hash: 42,
                                }),
                                ..Default::default()
                            }]
                        },
                    })),
                })
            })
            .collect::<Vec<_>>();
        Ok(Response::new(tokio_stream::iter(frames)))
    }

    async fn label_names(
        &self,
        request: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        let req = request.into_inner();
        let mut names = vec!["__name__".to_string(), "instance".to_string()];
        names.retain(|n| !req.without_replica_labels.contains(n));
        Ok(Response::new(LabelNamesResponse {
            names,
            ..Default::default()
        }))
    }

    async fn label_values(
        &self,
        request: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        let req = request.into_inner();
        if req.label.is_empty() {
            return Err(Status::invalid_argument(
                "label name parameter cannot be empty",
            ));
        }
        Ok(Response::new(LabelValuesResponse {
            values: vec![format!("{}-value", req.label)],
            ..Default::default()
        }))
    }
}

struct TestInfo;

#[tonic::async_trait]
impl Info for TestInfo {
    async fn info(&self, _: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(InfoResponse {
            label_sets: vec![ZLabelSet {
                labels: vec![label("replica", "r0")],
            }],
            component_type: "store".into(),
            store: Some(StoreInfo {
                min_time: 0,
                max_time: i64::MAX,
                supports_sharding: true,
                supports_without_replica_labels: true,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// Accepts every write except those for tenant `conflict` (read from the
/// `thanos-tenant` metadata key), which get `AlreadyExists` naming the number
/// of series received.
struct TestWriter;

#[tonic::async_trait]
impl WriteableStore for TestWriter {
    async fn remote_write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let tenant = request
            .metadata()
            .get("thanos-tenant")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("default-tenant")
            .to_string();
        let req = request.into_inner();
        let series: usize = req
            .timeseries_tenant_data
            .iter()
            .map(|t| t.timeseries.len())
            .sum();
        if tenant == "conflict" {
            return Err(Status::already_exists(format!(
                "tenant {tenant}: {series} series out of order"
            )));
        }
        Ok(Response::new(WriteResponse {}))
    }
}

async fn start_server() -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(StoreServer::new(TestStore))
            .add_service(InfoServer::new(TestInfo))
            .add_service(WriteableStoreServer::new(TestWriter))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            })
            .await
            .expect("server runs");
    });
    (addr, stop_tx, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_info_and_writeable_store_over_loopback() {
    let (addr, stop, handle) = start_server().await;
    let endpoint = format!("http://{addr}");

    // Series: two streamed frames, in order, with chunk data intact.
    let mut store = StoreClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let mut stream = store
        .series(SeriesRequest {
            min_time: 100,
            max_time: 200,
            matchers: vec![LabelMatcher {
                r#type: label_matcher::Type::Eq as i32,
                name: "__name__".into(),
                value: "up".into(),
            }],
            ..Default::default()
        })
        .await
        .expect("series call")
        .into_inner();
    let mut got = Vec::new();
    while let Some(frame) = stream.message().await.expect("frame") {
        match frame.result {
            Some(SeriesResult::Series(s)) => got.push(s),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels[1], label("instance", "a"));
    assert_eq!(got[1].labels[1], label("instance", "b"));
    let chunk = &got[1].chunks[0];
    assert_eq!((chunk.min_time, chunk.max_time), (100, 200));
    let raw = chunk.raw.as_ref().expect("raw chunk");
    assert_eq!(&raw.data[..], b"bbb");
    assert_eq!(raw.hash, 42);

    // Errors travel as gRPC status codes.
    let err = store
        .series(SeriesRequest::default())
        .await
        .expect_err("no matchers is an error");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let names = store
        .label_names(LabelNamesRequest {
            without_replica_labels: vec!["instance".into()],
            ..Default::default()
        })
        .await
        .expect("label names")
        .into_inner();
    assert_eq!(names.names, vec!["__name__".to_string()]);
    let values = store
        .label_values(LabelValuesRequest {
            label: "job".into(),
            ..Default::default()
        })
        .await
        .expect("label values")
        .into_inner();
    assert_eq!(values.values, vec!["job-value".to_string()]);

    // Info.
    let mut info = InfoClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let resp = info.info(InfoRequest {}).await.expect("info").into_inner();
    assert_eq!(resp.component_type, "store");
    assert_eq!(resp.label_sets[0].labels, vec![label("replica", "r0")]);
    let store_info = resp.store.expect("store info present");
    assert!(store_info.supports_sharding && store_info.supports_without_replica_labels);
    assert_eq!(store_info.max_time, i64::MAX);
    assert!(resp.exemplars.is_none());

    // WriteableStore, with the tenant in gRPC metadata.
    let mut writer = WriteableStoreClient::connect(endpoint)
        .await
        .expect("connect");
    let write = || WriteRequest {
        timeseries_tenant_data: vec![TimeSeriesTenantTuple {
            timeseries: vec![prometheus_copy::TimeSeries {
                labels: vec![label("__name__", "up")],
                samples: vec![prometheus_copy::Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                ..Default::default()
            }],
            tenant: "t".into(),
        }],
        ..Default::default()
    };
    writer.remote_write(write()).await.expect("write ok");
    let mut req = Request::new(write());
    req.metadata_mut()
        .insert("thanos-tenant", "conflict".parse().expect("ascii"));
    let err = writer.remote_write(req).await.expect_err("conflict");
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(err.message(), "tenant conflict: 1 series out of order");

    stop.send(()).expect("server still running");
    handle.await.expect("server task");
}
