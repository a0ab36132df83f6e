//! The local writer: appends a validated [`Batch`] into the tenant's head (mirrors
//! Thanos `pkg/receive/writer.go`).
//!
//! Every write path ends here: the HTTP handler in IngestorOnly mode, the in-process
//! replica of a RouterIngestor, and `thanos.WriteableStore/RemoteWrite` from peers. The
//! outcome is the same for all of them: series and samples rejected while decoding or by
//! the head are reported as [`WriteError::Rejected`] (the valid rest is stored), a write
//! that could not be made durable as [`WriteError::Append`].

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::WriteError;
use crate::head::AppendReport;
use crate::multitsdb::MultiTsdb;
use crate::write::Batch;

/// Writes batches into the per-tenant heads of a [`MultiTsdb`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalWriter {
    tsdb: Arc<MultiTsdb>,
}

impl LocalWriter {
    /// A writer into `tsdb`.
    pub fn new(tsdb: Arc<MultiTsdb>) -> Self {
        Self { tsdb }
    }

    /// The tenant heads written to.
    pub fn tsdb(&self) -> &Arc<MultiTsdb> {
        &self.tsdb
    }

    /// Appends `batch` to `tenant`'s head (created on first use). Returns the number of
    /// samples stored (new or identical duplicates), also when some were rejected, and
    /// the result. Blocking: the head logs and fsyncs the batch before returning, so
    /// call it from a blocking thread.
    ///
    /// Rejections recorded in the batch while decoding are merged with those of the head
    /// into one [`WriteError::Rejected`].
    pub fn write(&self, tenant: &str, batch: &Batch) -> (Written, Result<(), WriteError>) {
        let mut report = AppendReport::default();
        if !batch.series.is_empty() {
            let head = match self.tsdb.tenant_head(tenant) {
                Ok(head) => head,
                Err(err) => return (Written::default(), Err(err)),
            };
            report = match head.append_batch(batch, now_ms()) {
                Ok(report) => report,
                Err(source) => {
                    let err = WriteError::Append {
                        tenant: tenant.to_owned(),
                        source,
                    };
                    return (Written::default(), Err(err));
                }
            };
        }
        let written = Written {
            samples: (report.appended + report.identical).saturating_sub(report.histograms),
            histograms: report.histograms,
        };
        let mut rejections = batch.rejections.clone();
        rejections.merge(&report.rejections);
        if rejections.is_empty() {
            (written, Ok(()))
        } else {
            (written, Err(WriteError::Rejected(Box::new(rejections))))
        }
    }
}

/// What a write stored: float samples and histogram samples (identical resends
/// included), for the remote-write 2.0 `X-Prometheus-Remote-Write-*-Written` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Float samples.
    pub samples: u64,
    /// Native histogram samples.
    pub histograms: u64,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::HeadOptions;
    use crate::write::SeriesSamples;
    use prometheus::Registry;
    use thanos_model::{Labels, Sample};

    #[test]
    fn writes_and_reports_conflicts() {
        let tsdb = Arc::new(MultiTsdb::new(HeadOptions::default(), &Registry::new()).unwrap());
        let writer = LocalWriter::new(Arc::clone(&tsdb));
        let now = now_ms();
        let batch = Batch::from_series(vec![SeriesSamples {
            histograms: Vec::new(),
            labels: Labels::from_pairs([("__name__", "up")]),
            samples: vec![Sample::new(now, 1.0), Sample::new(now + 1, 2.0)],
        }]);
        assert_eq!(
            writer.write("t", &batch).0,
            Written {
                samples: 2,
                histograms: 0
            }
        );
        assert_eq!(tsdb.get("t").unwrap().num_series(), 1);
        let older = Batch::from_series(vec![SeriesSamples {
            histograms: Vec::new(),
            labels: Labels::from_pairs([("__name__", "up")]),
            samples: vec![Sample::new(now - 10, 3.0)],
        }]);
        let (written, result) = writer.write("t", &older);
        assert_eq!(written, Written::default());
        let err = result.unwrap_err();
        assert_eq!(err.http_status().as_u16(), 409, "{err}");
        assert!(err.to_string().contains("out of order"), "{err}");
        assert!(matches!(
            writer.write("../x", &batch).1,
            Err(WriteError::InvalidTenant { .. })
        ));
    }
}
