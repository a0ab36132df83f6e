//! The StoreAPI over the tenant TSDBs (Thanos's receive `localStorage` StoreAPI): serves
//! `thanos.Store` (Series, LabelNames, LabelValues) and `thanos.info.Info` from every
//! tenant's local blocks and in-memory head, each tenant advertised with its own external
//! label set (`--label`s + `<tenant label>=<tenant>`). A series present in several blocks
//! and the head is returned once, with the chunks of all of them in time order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use thanos_model::{CompactString, Labels, Matcher};
use thanos_proto::storepb::{
    SeriesStream, batch_series, finalize_labels, in_shard, labels_to_proto, matchers_from_proto,
    strip_external,
};
use thanos_proto::thanos::info::info_server::Info;
use thanos_proto::thanos::info::{InfoRequest, InfoResponse, StoreInfo, TsdbInfo};
use thanos_proto::thanos::store_server::Store;
use thanos_proto::thanos::{
    AggrChunk, Chunk, LabelMatcher, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest,
    LabelValuesResponse, Series, SeriesRequest, SeriesResponse, ZLabelSet, chunk,
};
use thanos_server::kind::ErrorKind;
use tonic::{Request, Response, Status};

use thanos_tsdb::block::Block;

use crate::head::{ChunkMeta, HeadSeries};
use crate::multitsdb::MultiTsdb;
use crate::tenant::Tenant;

/// Errors of the StoreAPI calls.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant heads are not open yet (WAL replay running).
    #[error("not ready: tenant WALs are still being replayed")]
    NotReady,
    /// The request is invalid (bad matcher, missing label name).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The blocking worker running the query failed.
    #[error("query worker: {0}")]
    Worker(String),
    /// Reading a local block failed.
    #[error("tenant {tenant}: read block: {source}")]
    Block {
        /// The tenant.
        tenant: String,
        /// The TSDB error (names the block and file).
        source: thanos_tsdb::error::Error,
    },
}

impl StoreError {
    /// The error class, for the gRPC status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotReady => ErrorKind::Unavailable,
            StoreError::InvalidArgument(_) => ErrorKind::BadRequest,
            StoreError::Worker(_) | StoreError::Block { .. } => ErrorKind::Internal,
        }
    }

    /// The gRPC status reporting this error.
    pub fn to_status(&self) -> Status {
        self.kind().to_grpc_status(self.to_string())
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        e.to_status()
    }
}

#[derive(Debug)]
struct Inner {
    tsdb: OnceLock<Arc<MultiTsdb>>,
    external: Labels,
    tenant_label: String,
}

/// StoreAPI and Info server over the blocks and heads of a [`MultiTsdb`]. Created before the heads
/// are open (so the gRPC server can start early); answers "not ready" until
/// [`ReceiveStore::attach`] is called. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ReceiveStore {
    inner: Arc<Inner>,
}

/// One tenant's view for a query: its external labels, blocks and head.
struct TenantView {
    labels: Labels,
    tenant: Arc<Tenant>,
}

impl TenantView {
    fn block_err(&self) -> impl Fn(thanos_tsdb::error::Error) -> StoreError + '_ {
        |source| StoreError::Block {
            tenant: self.tenant.name().to_owned(),
            source,
        }
    }

    /// Series matching `matchers` with chunks overlapping `[mint, maxt]`, from the blocks
    /// and the head, one entry per label set (sorted), chunks in time order.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<HeadSeries>, StoreError> {
        let err = self.block_err();
        let mut merged: BTreeMap<Labels, Vec<ChunkMeta>> = BTreeMap::new();
        self.tenant.with_view(|blocks, head| {
            for block in overlapping(blocks, mint, maxt) {
                let index = block.index();
                for r in index.postings_for_matchers(matchers).map_err(&err)? {
                    let (labels, metas) = index.series(r).map_err(&err)?;
                    let mut chunks = Vec::new();
                    for m in metas
                        .iter()
                        .filter(|m| m.max_time >= mint && m.min_time <= maxt)
                    {
                        let raw = block
                            .chunks()
                            .chunk(m.chunk_ref)
                            .map_err(|e| err(e.in_block(block.ulid())))?;
                        // Chunk encodings this store cannot serve (none are written by
                        // the head) are left out.
                        let Ok(encoding) = thanos_model::Encoding::try_from(raw.encoding) else {
                            continue;
                        };
                        if encoding == thanos_model::Encoding::None {
                            continue;
                        }
                        chunks.push(ChunkMeta {
                            min_time: m.min_time,
                            max_time: m.max_time,
                            encoding,
                            data: bytes::Bytes::copy_from_slice(raw.data),
                        });
                    }
                    if !chunks.is_empty() {
                        merged.entry(labels).or_default().extend(chunks);
                    }
                }
            }
            for s in head.select(matchers, mint, maxt) {
                merged.entry(s.labels).or_default().extend(s.chunks);
            }
            Ok::<(), StoreError>(())
        })?;
        Ok(merged
            .into_iter()
            .map(|(labels, mut chunks)| {
                chunks.sort_by_key(|c| (c.min_time, c.max_time));
                HeadSeries { labels, chunks }
            })
            .collect())
    }

    /// Label names of the series matching `matchers` in `[mint, maxt]`.
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<BTreeSet<String>, StoreError> {
        self.tenant.with_view(|blocks, head| {
            let mut names: BTreeSet<String> =
                head.label_names(matchers, mint, maxt).into_iter().collect();
            for block in overlapping(blocks, mint, maxt) {
                names.extend(
                    block
                        .index()
                        .label_names_for(matchers)
                        .map_err(self.block_err())?,
                );
            }
            Ok(names)
        })
    }

    /// Values of `name` among the series matching `matchers` in `[mint, maxt]`.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<BTreeSet<String>, StoreError> {
        self.tenant.with_view(|blocks, head| {
            let mut values: BTreeSet<String> = head
                .label_values(name, matchers, mint, maxt)
                .into_iter()
                .collect();
            for block in overlapping(blocks, mint, maxt) {
                values.extend(
                    block
                        .index()
                        .label_values_for(name, matchers)
                        .map_err(self.block_err())?,
                );
            }
            values.remove("");
            Ok(values)
        })
    }
}

/// The blocks overlapping `[mint, maxt]` (block ranges are end-exclusive).
fn overlapping(blocks: &[Arc<Block>], mint: i64, maxt: i64) -> impl Iterator<Item = &Block> {
    blocks
        .iter()
        .filter(move |b| b.meta().min_time <= maxt && b.meta().max_time > mint)
        .map(|b| &**b)
}

/// Decodes request matchers; a bad matcher is an invalid argument.
fn convert_matchers(ms: &[LabelMatcher]) -> Result<Vec<Matcher>, StoreError> {
    matchers_from_proto(ms).map_err(|e| StoreError::InvalidArgument(e.to_string()))
}

/// The StoreAPI chunk type of a TSDB chunk encoding.
fn wire_encoding(e: thanos_model::Encoding) -> chunk::Encoding {
    match e {
        thanos_model::Encoding::Histogram => chunk::Encoding::Histogram,
        thanos_model::Encoding::FloatHistogram => chunk::Encoding::FloatHistogram,
        _ => chunk::Encoding::Xor,
    }
}

fn to_wire_series(labels: &Labels, s: HeadSeries, skip_chunks: bool) -> Series {
    let chunks = if skip_chunks {
        Vec::new()
    } else {
        s.chunks
            .into_iter()
            .map(|c| AggrChunk {
                min_time: c.min_time,
                max_time: c.max_time,
                raw: Some(Chunk {
                    r#type: wire_encoding(c.encoding) as i32,
                    hash: xxhash_rust::xxh64::xxh64(&c.data, 0),
                    data: c.data,
                }),
                ..AggrChunk::default()
            })
            .collect()
    };
    Series {
        labels: labels_to_proto(labels),
        chunks,
    }
}

fn limit_of(limit: i64) -> usize {
    usize::try_from(limit)
        .ok()
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX)
}

impl ReceiveStore {
    /// A store whose tenants are labelled with the `external` name/value pairs (the
    /// `--label`s) plus `<tenant_label_name>=<tenant>` (`--receive.tenant-label-name`).
    /// Not ready until [`ReceiveStore::attach`].
    pub fn new<N, V>(
        external: impl IntoIterator<Item = (N, V)>,
        tenant_label_name: impl Into<String>,
    ) -> Self
    where
        N: Into<CompactString>,
        V: Into<CompactString>,
    {
        Self {
            inner: Arc::new(Inner {
                tsdb: OnceLock::new(),
                external: Labels::from_pairs(external),
                tenant_label: tenant_label_name.into(),
            }),
        }
    }

    /// Starts serving the heads of `tsdb`. Returns `false` (and changes nothing) when a
    /// registry was already attached.
    pub fn attach(&self, tsdb: Arc<MultiTsdb>) -> bool {
        self.inner.tsdb.set(tsdb).is_ok()
    }

    /// Whether the heads are attached.
    pub fn is_ready(&self) -> bool {
        self.inner.tsdb.get().is_some()
    }

    /// The external label set of `tenant`: the configured labels plus the tenant label
    /// (which wins over a same-named configured label).
    pub fn tenant_labels(&self, tenant: &str) -> Labels {
        let mut b = self.inner.external.builder();
        b.set(self.inner.tenant_label.clone(), tenant);
        b.build()
    }

    /// Every tenant with its external labels, in tenant name order.
    fn tenants(&self) -> Result<Vec<TenantView>, StoreError> {
        let tsdb = self.inner.tsdb.get().ok_or(StoreError::NotReady)?;
        Ok(tsdb
            .tenants()
            .into_iter()
            .filter_map(|t| {
                tsdb.tenant(&t).map(|tenant| TenantView {
                    labels: self.tenant_labels(&t),
                    tenant,
                })
            })
            .collect())
    }

    /// Answers a Series request: the matching series of every tenant whose external
    /// labels match, external labels attached (overriding stored ones), replica labels
    /// removed, sorted by label set across tenants; chunks overlapping `[min_time,
    /// max_time]` as raw XOR chunks (none with `skip_chunks`). Blocking: it walks every
    /// tenant's series.
    pub fn series_blocking(&self, req: &SeriesRequest) -> Result<Vec<Series>, StoreError> {
        let matchers = convert_matchers(&req.matchers)?;
        let no_matchers = || {
            StoreError::InvalidArgument("no matchers specified (excluding external labels)".into())
        };
        if matchers.is_empty() {
            return Err(no_matchers());
        }
        let mut out: Vec<(Labels, HeadSeries)> = Vec::new();
        for t in self.tenants()? {
            let Some(rest) = strip_external(&matchers, &t.labels) else {
                continue;
            };
            if rest.is_empty() {
                return Err(no_matchers());
            }
            for s in t.select(&rest, req.min_time, req.max_time)? {
                let labels = finalize_labels(&s.labels, &t.labels, &req.without_replica_labels);
                if in_shard(&labels, req.shard_info.as_ref()) {
                    out.push((labels, s));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out
            .into_iter()
            .take(limit_of(req.limit))
            .map(|(labels, s)| to_wire_series(&labels, s, req.skip_chunks))
            .collect())
    }

    /// Answers a LabelNames request: sorted names of the series matching the matchers in
    /// `[start, end]`, including the external label names of tenants with such series,
    /// replica labels removed. Blocking.
    pub fn label_names_blocking(&self, req: &LabelNamesRequest) -> Result<Vec<String>, StoreError> {
        let matchers = convert_matchers(&req.matchers)?;
        let mut names = BTreeSet::new();
        for t in self.tenants()? {
            let Some(rest) = strip_external(&matchers, &t.labels) else {
                continue;
            };
            let found = t.label_names(&rest, req.start, req.end)?;
            if found.is_empty() {
                continue;
            }
            names.extend(found);
            names.extend(t.labels.iter().map(|l| l.name.to_string()));
        }
        for w in &req.without_replica_labels {
            names.remove(w);
        }
        Ok(names.into_iter().take(limit_of(req.limit)).collect())
    }

    /// Answers a LabelValues request: sorted values of `req.label` among the series
    /// matching the matchers in `[start, end]`; for an external label, the tenant's value
    /// when it has such series. Blocking.
    pub fn label_values_blocking(
        &self,
        req: &LabelValuesRequest,
    ) -> Result<Vec<String>, StoreError> {
        if req.label.is_empty() {
            return Err(StoreError::InvalidArgument(
                "label name parameter cannot be empty".into(),
            ));
        }
        let matchers = convert_matchers(&req.matchers)?;
        let tenants = self.tenants()?;
        if req.without_replica_labels.contains(&req.label) {
            return Ok(Vec::new());
        }
        let mut values = BTreeSet::new();
        for t in tenants {
            let Some(rest) = strip_external(&matchers, &t.labels) else {
                continue;
            };
            if let Some(v) = t.labels.get(&req.label) {
                if !t.label_names(&rest, req.start, req.end)?.is_empty() {
                    values.insert(v.to_owned());
                }
            } else {
                values.extend(t.label_values(&req.label, &rest, req.start, req.end)?);
            }
        }
        Ok(values.into_iter().take(limit_of(req.limit)).collect())
    }

    /// Info: one label set per tenant (sorted by its string form) with the tenant's
    /// oldest block or head sample time and an open end (`i64::MAX`); the store's min time
    /// is the oldest of any tenant (`i64::MAX` when there is no data yet).
    pub fn info(&self) -> Result<InfoResponse, StoreError> {
        let mut tenants: Vec<(String, TenantView)> = self
            .tenants()?
            .into_iter()
            .map(|t| (t.labels.to_string(), t))
            .collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let mut mint = i64::MAX;
        let mut tsdb_infos = Vec::with_capacity(tenants.len());
        for (_, t) in &tenants {
            let tmin = t.tenant.min_time().unwrap_or(i64::MAX);
            mint = mint.min(tmin);
            tsdb_infos.push(TsdbInfo {
                labels: Some(ZLabelSet {
                    labels: labels_to_proto(&t.labels),
                }),
                min_time: tmin,
                max_time: i64::MAX,
            });
        }
        Ok(InfoResponse {
            label_sets: tenants
                .iter()
                .map(|(_, t)| ZLabelSet {
                    labels: labels_to_proto(&t.labels),
                })
                .collect(),
            component_type: "receive".into(),
            store: Some(StoreInfo {
                min_time: mint,
                max_time: i64::MAX,
                supports_sharding: true,
                supports_without_replica_labels: true,
                tsdb_infos,
                supports_projections: false,
            }),
            ..InfoResponse::default()
        })
    }

    /// Runs `f` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReceiveStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }
}

#[tonic::async_trait]
impl Store for ReceiveStore {
    type SeriesStream = SeriesStream;

    async fn series(
        &self,
        request: Request<SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let req = request.into_inner();
        let batch_size = req.response_batch_size;
        let series = self
            .blocking(move |s| s.series_blocking(&req))
            .await
            .inspect_err(|e| tracing::debug!(err = %e, "series call failed"))?;
        let frames = series.into_iter().map(|s| Ok(SeriesResponse::series(s)));
        Ok(Response::new(batch_series(
            futures::stream::iter(frames),
            batch_size,
        )))
    }

    async fn label_names(
        &self,
        request: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        let req = request.into_inner();
        let names = self.blocking(move |s| s.label_names_blocking(&req)).await?;
        Ok(Response::new(LabelNamesResponse {
            names,
            ..LabelNamesResponse::default()
        }))
    }

    async fn label_values(
        &self,
        request: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        let req = request.into_inner();
        let values = self
            .blocking(move |s| s.label_values_blocking(&req))
            .await?;
        Ok(Response::new(LabelValuesResponse {
            values,
            ..LabelValuesResponse::default()
        }))
    }
}

#[tonic::async_trait]
impl Info for ReceiveStore {
    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(ReceiveStore::info(self)?))
    }
}
