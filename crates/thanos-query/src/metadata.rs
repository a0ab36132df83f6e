//! Metric metadata fan-out (Thanos `pkg/metadata`): `thanos.Metadata/MetricMetadata` on
//! every healthy endpoint advertising it, merged into Prometheus's `/api/v1/metadata` shape.

use std::collections::BTreeMap;

use thanos_proto::thanos::metadata_client::MetadataClient;
use thanos_proto::thanos::metric_metadata_response::Result as Frame;
use thanos_proto::thanos::{Meta, MetricMetadataRequest, PartialResponseStrategy};
use tokio::time::Instant;

use crate::endpoints::EndpointSet;
use crate::error::QueryError;

/// Merged metadata: metric name → unique entries in first-seen order.
pub type MetadataMap = BTreeMap<String, Vec<Meta>>;

/// Asks every metadata endpoint for `metric` (empty = all) and merges the answers.
/// `limit` caps the number of metrics and `limit_per_metric` the entries per metric
/// (negative or 0 = unlimited, as Prometheus). Failures are warnings unless `abort`.
pub async fn fetch(
    endpoints: &EndpointSet,
    metric: &str,
    limit: i32,
    limit_per_metric: i32,
    abort: bool,
    deadline: Instant,
) -> Result<(MetadataMap, Vec<String>), QueryError> {
    let strategy = if abort {
        PartialResponseStrategy::Abort
    } else {
        PartialResponseStrategy::Warn
    };
    let started = Instant::now();
    let calls = endpoints
        .metadata_endpoints()
        .into_iter()
        .map(|(address, channel)| {
            let request = MetricMetadataRequest {
                metric: metric.to_owned(),
                limit,
                partial_response_strategy: strategy as i32,
            };
            async move {
                let mut client = MetadataClient::new(channel);
                let call = async {
                    let mut stream = client.metric_metadata(request).await?.into_inner();
                    let mut frames = Vec::new();
                    while let Some(frame) = stream.message().await? {
                        frames.extend(frame.result);
                    }
                    Ok::<_, tonic::Status>(frames)
                };
                match tokio::time::timeout_at(deadline, call).await {
                    Ok(Ok(frames)) => Ok(frames),
                    Ok(Err(s)) => Err(QueryError::Store {
                        address,
                        code: s.code(),
                        message: s.message().to_owned(),
                    }),
                    Err(_) => Err(QueryError::StoreTimeout {
                        address,
                        timeout: started.elapsed(),
                    }),
                }
            }
        });
    let mut merged = MetadataMap::new();
    let mut warnings = Vec::new();
    for result in futures::future::join_all(calls).await {
        let frames = match result {
            Ok(f) => f,
            Err(e) if abort => return Err(e),
            Err(e) => {
                warnings.push(e.to_string());
                continue;
            }
        };
        for frame in frames {
            match frame {
                Frame::Metadata(m) => {
                    for (name, entry) in m.metadata {
                        let metas = merged.entry(name).or_default();
                        for meta in entry.metas {
                            if !metas.contains(&meta) {
                                metas.push(meta);
                            }
                        }
                    }
                }
                Frame::Warning(w) if abort => {
                    return Err(QueryError::StoreWarning {
                        address: "metadata".to_owned(),
                        message: w,
                    });
                }
                Frame::Warning(w) => warnings.push(w),
            }
        }
    }
    if let Ok(n) = usize::try_from(limit_per_metric)
        && n > 0
    {
        for metas in merged.values_mut() {
            metas.truncate(n);
        }
    }
    if let Ok(n) = usize::try_from(limit)
        && n > 0
        && merged.len() > n
    {
        merged = merged.into_iter().take(n).collect();
    }
    Ok((merged, warnings))
}
