//! The gRPC services a querier serves so that queriers can be stacked: `thanos.Store`
//! over the proxy (Thanos `pkg/store/proxy.go` as a server) and `thanos.info.Info` with
//! component type `query` (storeapi.md §7).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use thanos_proto::storepb::{SeriesStream, batch_series};
use thanos_proto::thanos::info::info_server::{Info, InfoServer};
use thanos_proto::thanos::info::{InfoRequest, InfoResponse, StoreInfo};
use thanos_proto::thanos::store_server::{Store, StoreServer};
use thanos_proto::thanos::{
    LabelNamesRequest, LabelNamesResponse, LabelValuesRequest, LabelValuesResponse, SeriesRequest,
    SeriesResponse, ZLabelSet,
};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::proxy::{ProxyFrame, ProxyStore, labels_to_proto};

/// `thanos.Store` served over a [`ProxyStore`].
#[derive(Debug, Clone)]
pub struct ProxyService {
    proxy: Arc<ProxyStore>,
    timeout: Duration,
}

impl ProxyService {
    /// A service answering through `proxy`; `timeout` bounds every store stream
    /// (the caller's `grpc-timeout`, when shorter, wins).
    pub fn new(proxy: Arc<ProxyStore>, timeout: Duration) -> Self {
        Self { proxy, timeout }
    }

    /// The tonic server wrapper, with the project's message size limits.
    pub fn into_server(self) -> StoreServer<Self> {
        StoreServer::new(self)
            .max_decoding_message_size(thanos_server::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(thanos_server::MAX_MESSAGE_SIZE)
    }

    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        let caller = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let timeout = caller.map_or(self.timeout, |c| c.min(self.timeout));
        Instant::now() + timeout
    }
}

/// Parses a `grpc-timeout` header value (`<digits><unit>`, units `H M S m u n`).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[tonic::async_trait]
impl Store for ProxyService {
    type SeriesStream = SeriesStream;

    async fn series(
        &self,
        request: Request<SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let deadline = self.deadline(&request);
        let request = request.into_inner();
        let batch_size = request.response_batch_size;
        let stream = self.proxy.series(request, Some(deadline));
        let out = stream.map(|frame| match frame {
            Ok(ProxyFrame::Series(s)) => Ok(SeriesResponse::series(s.to_proto())),
            Ok(ProxyFrame::Warning(w)) => Ok(SeriesResponse::warning(w)),
            Err(e) => Err(e.to_status()),
        });
        Ok(Response::new(batch_series(out, batch_size)))
    }

    async fn label_names(
        &self,
        request: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        let deadline = self.deadline(&request);
        self.proxy
            .label_names(request.into_inner(), Some(deadline), &[])
            .await
            .map(Response::new)
            .map_err(|e| e.to_status())
    }

    async fn label_values(
        &self,
        request: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        let deadline = self.deadline(&request);
        self.proxy
            .label_values(request.into_inner(), Some(deadline), &[])
            .await
            .map(Response::new)
            .map_err(|e| e.to_status())
    }
}

/// `thanos.info.Info` of a querier: the label sets and time range of its healthy stores.
#[derive(Debug, Clone)]
pub struct QueryInfoService {
    proxy: Arc<ProxyStore>,
}

impl QueryInfoService {
    /// Info over the endpoints of `proxy`.
    pub fn new(proxy: Arc<ProxyStore>) -> Self {
        Self { proxy }
    }

    /// The tonic server wrapper.
    pub fn into_server(self) -> InfoServer<Self> {
        InfoServer::new(self)
    }

    /// The Info answer from the current endpoint statuses.
    pub fn info(&self) -> InfoResponse {
        let healthy: Vec<_> = self
            .proxy
            .endpoints()
            .statuses()
            .into_iter()
            .filter(|s| s.healthy)
            .collect();
        let mut sets: Vec<_> = healthy
            .iter()
            .flat_map(|s| s.label_sets.iter().cloned())
            .collect();
        sets.sort();
        sets.dedup();
        let (min_time, max_time) = if healthy.is_empty() {
            (i64::MAX, i64::MIN)
        } else {
            (
                healthy.iter().map(|s| s.min_time).min().unwrap_or(i64::MIN),
                healthy.iter().map(|s| s.max_time).max().unwrap_or(i64::MAX),
            )
        };
        InfoResponse {
            label_sets: sets
                .iter()
                .map(|l| ZLabelSet {
                    labels: labels_to_proto(l),
                })
                .collect(),
            component_type: "query".to_owned(),
            store: Some(StoreInfo {
                min_time,
                max_time,
                supports_sharding: false,
                supports_without_replica_labels: true,
                tsdb_infos: Vec::new(),
                supports_projections: false,
            }),
            ..InfoResponse::default()
        }
    }
}

#[tonic::async_trait]
impl Info for QueryInfoService {
    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(QueryInfoService::info(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
