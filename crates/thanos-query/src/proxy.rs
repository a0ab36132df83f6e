//! The proxy store (Thanos `pkg/store/proxy.go` and `proxy_merge.go`).
//!
//! A `Series` request is sent to every healthy endpoint whose time range and external
//! labels can match it. Each store stream is read by its own task into a small bounded
//! channel ([`STORE_BUFFER`] frames, one frame's series at a time), so memory stays bounded
//! however large the result; a store that does not answer within the per-store deadline
//! (or the per-frame response timeout) is cut off. When only one store is asked, its
//! reader starts inside the consumer's task and only moves to a task of its own once the
//! answer turns out to be large, so small queries pay no task hand-offs. The sorted
//! streams are k-way merged by labels, by the consumer of the proxied stream; identical
//! label sets from different stores (or split across frames) become one series, and
//! byte-identical chunks (equal time range and hash) are dropped. Store failures become
//! warnings under the WARN strategy and end the request with an error under ABORT.
//!
//! Stores that do not advertise `supports_without_replica_labels` get their replica labels
//! stripped here; their response is then buffered and re-sorted before merging, since
//! stripping can change the order.

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use thanos_model::{Label, Labels, Matcher};
use thanos_proto::series_codec::{self, SeriesFrame};
pub use thanos_proto::storepb::{labels_to_proto, matchers_from_proto, matchers_to_proto};
use thanos_proto::thanos::{
    AggrChunk, LabelNamesRequest, LabelNamesResponse, LabelValuesRequest, LabelValuesResponse,
    PartialResponseStrategy, Series as ProtoSeries, SeriesRequest,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::endpoints::{EndpointSet, StoreRef};
use crate::error::QueryError;

/// Frames buffered per store stream before the reader waits for the merge.
pub const STORE_BUFFER: usize = 16;

/// One series of a proxied response: labels (external labels merged, replica labels
/// removed when requested) and the chunks collected from every store.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedSeries {
    /// Series labels.
    pub labels: Labels,
    /// Chunks, sorted by min time; byte-identical chunks appear once.
    pub chunks: Vec<AggrChunk>,
}

impl MergedSeries {
    /// The series in StoreAPI form.
    pub fn to_proto(&self) -> ProtoSeries {
        ProtoSeries {
            labels: labels_to_proto(&self.labels),
            chunks: self.chunks.clone(),
        }
    }
}

/// One item of a proxied series stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyFrame {
    /// A merged series.
    Series(MergedSeries),
    /// A warning (a store failed or reported one while partial responses are allowed).
    Warning(String),
}

/// A stream of proxied frames; ends after the first error.
pub type ProxyStream = Pin<Box<dyn Stream<Item = Result<ProxyFrame, QueryError>> + Send>>;

/// Options of the [`ProxyStore`].
#[derive(Debug, Clone, Copy)]
pub struct ProxyOptions {
    /// Per-frame receive timeout on each store stream (`--store.response-timeout`);
    /// `None` waits until the request deadline.
    pub response_timeout: Option<Duration>,
}

/// Fans StoreAPI requests out to the healthy endpoints and merges the answers.
#[derive(Debug, Clone)]
pub struct ProxyStore {
    endpoints: Arc<EndpointSet>,
    options: ProxyOptions,
}

/// What a store reader hands to the merge: the series of one frame at a time.
enum StoreItem {
    Series(Vec<MergedSeries>),
    Warning(String),
    Failed(QueryError),
}

impl ProxyStore {
    /// A proxy over `endpoints`.
    pub fn new(endpoints: Arc<EndpointSet>, options: ProxyOptions) -> Self {
        Self { endpoints, options }
    }

    /// The endpoint set queried.
    pub fn endpoints(&self) -> &Arc<EndpointSet> {
        &self.endpoints
    }

    /// Streams the merged answer of every matching store. `deadline` bounds each store
    /// stream; a store still sending at the deadline counts as failed.
    pub fn series(&self, request: SeriesRequest, deadline: Option<Instant>) -> ProxyStream {
        self.series_from(request, deadline, &[])
    }

    /// Like [`ProxyStore::series`], only over the stores selected by `store_matchers`
    /// (`storeMatch[]`, see [`EndpointSet::stores_for`]).
    pub fn series_from(
        &self,
        request: SeriesRequest,
        deadline: Option<Instant>,
        store_matchers: &[Vec<Matcher>],
    ) -> ProxyStream {
        match matchers_from_proto(&request.matchers) {
            Ok(matchers) => self.series_matching(request, &matchers, deadline, store_matchers),
            Err(e) => Box::pin(futures::stream::iter([Err(e.into())])),
        }
    }

    /// Like [`ProxyStore::series_from`], with `matchers` the parsed form of
    /// `request.matchers` (callers holding them skip parsing, and compiling regexes, again).
    pub fn series_matching(
        &self,
        request: SeriesRequest,
        matchers: &[Matcher],
        deadline: Option<Instant>,
        store_matchers: &[Vec<Matcher>],
    ) -> ProxyStream {
        let abort = is_abort(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        if self.endpoints.is_empty() {
            let items = abort.then_some(Err(QueryError::NoStores));
            return Box::pin(futures::stream::iter(items));
        }
        let stores =
            self.endpoints
                .stores_for(request.min_time, request.max_time, matchers, store_matchers);
        tracing::debug!(
            stores = stores.len(),
            mint = request.min_time,
            maxt = request.max_time,
            "proxying series"
        );
        let single = stores.len() == 1;
        let request = Arc::new(request);
        let mut driver = None;
        let receivers: Vec<(String, mpsc::Receiver<StoreItem>)> = stores
            .into_iter()
            .map(|store| {
                let (tx, rx) = mpsc::channel(STORE_BUFFER);
                let address = store.status.address.clone();
                let reader = read_store(
                    store,
                    request.clone(),
                    deadline,
                    self.options.response_timeout,
                    tx,
                );
                if single {
                    driver = Some(Box::pin(reader) as Reader);
                } else {
                    tokio::spawn(reader);
                }
                (address, rx)
            })
            .collect();
        Merge::new(receivers, abort, driver).into_stream()
    }

    /// Label names of every matching store (restricted by `store_matchers`, see
    /// [`EndpointSet::stores_for`]), merged and sorted; store failures become warnings
    /// (WARN) or the error (ABORT).
    pub async fn label_names(
        &self,
        request: LabelNamesRequest,
        deadline: Option<Instant>,
        store_matchers: &[Vec<Matcher>],
    ) -> Result<LabelNamesResponse, QueryError> {
        let abort = is_abort(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        let matchers = matchers_from_proto(&request.matchers)?;
        let results = self
            .fan_out(
                Target {
                    mint: request.start,
                    maxt: request.end,
                    matchers: &matchers,
                    store_matchers,
                },
                abort,
                deadline,
                |mut c| {
                    let req = request.clone();
                    async move { c.label_names(req).await.map(|r| r.into_inner()) }
                },
            )
            .await?;
        let mut names = BTreeSet::new();
        let mut warnings = results.warnings;
        for resp in results.responses {
            names.extend(resp.names);
            warnings.extend(resp.warnings);
        }
        if abort && let Some(w) = warnings.first() {
            return Err(QueryError::StoreWarning {
                address: "label names".to_owned(),
                message: w.clone(),
            });
        }
        for replica in &request.without_replica_labels {
            names.remove(replica);
        }
        Ok(LabelNamesResponse {
            names: names.into_iter().collect(),
            warnings,
            hints: None,
        })
    }

    /// Values of one label from every matching store (restricted by `store_matchers`),
    /// merged and sorted.
    pub async fn label_values(
        &self,
        request: LabelValuesRequest,
        deadline: Option<Instant>,
        store_matchers: &[Vec<Matcher>],
    ) -> Result<LabelValuesResponse, QueryError> {
        let abort = is_abort(
            request.partial_response_strategy,
            request.partial_response_disabled,
        );
        if request.without_replica_labels.contains(&request.label) {
            return Ok(LabelValuesResponse::default());
        }
        let matchers = matchers_from_proto(&request.matchers)?;
        let results = self
            .fan_out(
                Target {
                    mint: request.start,
                    maxt: request.end,
                    matchers: &matchers,
                    store_matchers,
                },
                abort,
                deadline,
                |mut c| {
                    let req = request.clone();
                    async move { c.label_values(req).await.map(|r| r.into_inner()) }
                },
            )
            .await?;
        let mut values = BTreeSet::new();
        let mut warnings = results.warnings;
        for resp in results.responses {
            values.extend(resp.values);
            warnings.extend(resp.warnings);
        }
        if abort && let Some(w) = warnings.first() {
            return Err(QueryError::StoreWarning {
                address: "label values".to_owned(),
                message: w.clone(),
            });
        }
        Ok(LabelValuesResponse {
            values: values.into_iter().collect(),
            warnings,
            hints: None,
        })
    }

    async fn fan_out<T, F, Fut>(
        &self,
        target: Target<'_>,
        abort: bool,
        deadline: Option<Instant>,
        call: F,
    ) -> Result<FanOut<T>, QueryError>
    where
        F: Fn(thanos_proto::thanos::store_client::StoreClient<thanos_server::GrpcChannel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        if self.endpoints.is_empty() && abort {
            return Err(QueryError::NoStores);
        }
        let stores = self.endpoints.stores_for(
            target.mint,
            target.maxt,
            target.matchers,
            target.store_matchers,
        );
        // Unary calls have one "frame": the response timeout bounds the whole call.
        let started = Instant::now();
        let by_response = self.options.response_timeout.map(|t| started + t);
        let deadline = match (deadline, by_response) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let calls = stores.into_iter().map(|store| {
            let fut = call(store.client);
            let address = store.status.address;
            async move {
                let res = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, fut).await {
                        Ok(r) => r,
                        Err(_) => {
                            return Err(QueryError::StoreTimeout {
                                address,
                                timeout: started.elapsed(),
                            });
                        }
                    },
                    None => fut.await,
                };
                res.map_err(|s| QueryError::Store {
                    address,
                    code: s.code(),
                    message: s.message().to_owned(),
                })
            }
        });
        let mut out = FanOut {
            responses: Vec::new(),
            warnings: Vec::new(),
        };
        for res in futures::future::join_all(calls).await {
            match res {
                Ok(r) => out.responses.push(r),
                Err(e) if abort => return Err(e),
                Err(e) => out.warnings.push(e.to_string()),
            }
        }
        Ok(out)
    }
}

/// Which stores a unary fan-out goes to.
struct Target<'a> {
    mint: i64,
    maxt: i64,
    matchers: &'a [Matcher],
    store_matchers: &'a [Vec<Matcher>],
}

struct FanOut<T> {
    responses: Vec<T>,
    warnings: Vec<String>,
}

fn is_abort(strategy: i32, disabled: bool) -> bool {
    disabled || strategy == PartialResponseStrategy::Abort as i32
}

/// Reads one store stream into `tx`, enforcing the deadline and response timeout.
async fn read_store(
    store: StoreRef,
    request: Arc<SeriesRequest>,
    deadline: Option<Instant>,
    response_timeout: Option<Duration>,
    tx: mpsc::Sender<StoreItem>,
) {
    let address = store.status.address.clone();
    let started = Instant::now();
    let strip: Vec<String> = request.without_replica_labels.clone();
    let store_strips = store.status.supports_without_replica_labels;
    let frame_deadline = || {
        let by_frame = response_timeout.map(|t| Instant::now() + t);
        match (deadline, by_frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    let timed_out = |address: &str| QueryError::StoreTimeout {
        address: address.to_owned(),
        timeout: started.elapsed(),
    };
    let mut grpc_request = tonic::Request::new((*request).clone());
    if let Some(d) = deadline {
        grpc_request.set_timeout(d.saturating_duration_since(Instant::now()));
    }
    let open = series_codec::series(
        store.channel.clone(),
        grpc_request,
        thanos_server::MAX_MESSAGE_SIZE,
    );
    let opened = match frame_deadline() {
        Some(d) => tokio::time::timeout_at(d, open).await.ok(),
        None => Some(open.await),
    };
    let mut stream = match opened {
        None => {
            let _ = tx.send(StoreItem::Failed(timed_out(&address))).await;
            return;
        }
        Some(Err(s)) => {
            let _ = tx.send(StoreItem::Failed(store_error(&address, &s))).await;
            return;
        }
        Some(Ok(stream)) => stream,
    };
    // Stores that cannot strip replica labels: strip here, buffer and re-sort.
    let mut buffered: Option<Vec<MergedSeries>> =
        (!strip.is_empty() && !store_strips).then(Vec::new);
    loop {
        let next = stream.message();
        let msg = match frame_deadline() {
            Some(d) => match tokio::time::timeout_at(d, next).await {
                Ok(m) => m,
                Err(_) => {
                    let _ = tx.send(StoreItem::Failed(timed_out(&address))).await;
                    return;
                }
            },
            None => next.await,
        };
        let series = match msg {
            Ok(Some(SeriesFrame::Series(series))) => series,
            Ok(Some(SeriesFrame::Warning(w))) => {
                if tx.send(StoreItem::Warning(w)).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Some(SeriesFrame::Other)) => continue,
            Ok(None) => break,
            Err(s) => {
                let _ = tx.send(StoreItem::Failed(store_error(&address, &s))).await;
                return;
            }
        };
        let mut batch = Vec::with_capacity(series.len());
        for s in series {
            match series_labels(s.labels, &strip) {
                Ok(labels) => batch.push(MergedSeries {
                    labels,
                    chunks: s.chunks,
                }),
                Err(source) => {
                    let err = QueryError::InvalidLabels {
                        address: address.clone(),
                        source,
                    };
                    let _ = tx.send(StoreItem::Failed(err)).await;
                    return;
                }
            }
        }
        match &mut buffered {
            Some(buf) => buf.append(&mut batch),
            None if batch.is_empty() => {}
            None => {
                if tx.send(StoreItem::Series(batch)).await.is_err() {
                    return;
                }
            }
        }
    }
    if let Some(mut buf) = buffered {
        buf.sort_by(|a, b| a.labels.cmp(&b.labels));
        let _ = tx.send(StoreItem::Series(buf)).await;
    }
}

fn store_error(address: &str, status: &tonic::Status) -> QueryError {
    QueryError::Store {
        address: address.to_owned(),
        code: status.code(),
        message: status.message().to_owned(),
    }
}

/// The labels of a received series without `strip`, validated.
fn series_labels(
    mut labels: Vec<Label>,
    strip: &[String],
) -> Result<Labels, thanos_model::ModelError> {
    if !strip.is_empty() {
        labels.retain(|l| !strip.iter().any(|s| *s == l.name));
    }
    Labels::new(labels)
}

/// One store stream being merged: its receiver, the rest of the last batch received and
/// the series at the front.
struct Head {
    address: String,
    rx: mpsc::Receiver<StoreItem>,
    pending: std::vec::IntoIter<MergedSeries>,
    current: Option<MergedSeries>,
}

impl Head {
    /// Moves the next series into `current`; warnings met on the way are appended to
    /// `warnings`. Fails only when the request must be aborted.
    async fn advance(&mut self, abort: bool, warnings: &mut Vec<String>) -> Result<(), QueryError> {
        self.current = self.pending.next();
        while self.current.is_none() {
            match self.rx.recv().await {
                None => return Ok(()),
                Some(StoreItem::Series(batch)) => {
                    self.pending = batch.into_iter();
                    self.current = self.pending.next();
                }
                Some(StoreItem::Warning(w)) => {
                    if abort {
                        return Err(QueryError::StoreWarning {
                            address: self.address.clone(),
                            message: w,
                        });
                    }
                    warnings.push(w);
                }
                Some(StoreItem::Failed(e)) => {
                    if abort {
                        return Err(e);
                    }
                    tracing::warn!(store = %self.address, error = %e, "store failed, returning partial response");
                    warnings.push(e.to_string());
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// A store reader ([`read_store`]) not spawned as a task.
type Reader = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Series a single store's reader may produce inside the consumer's task before it is
/// moved to a task of its own (so that large answers are received and decoded on both
/// cores, while small ones cost no task hand-offs).
const INLINE_SERIES: usize = 512;

/// Polls `fut` to completion while also polling `driver` (when there is one) until it
/// finishes.
async fn driving<F: Future>(driver: &mut Option<Reader>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Some(d) = driver
            && d.as_mut().poll(cx).is_ready()
        {
            *driver = None;
        }
        fut.as_mut().poll(cx)
    })
    .await
}

/// K-way merge of the store streams by labels, run by the consumer of the proxied
/// stream itself. Store readers are separate tasks, except the reader of a request going
/// to a single store, which starts out driven by the merge (see [`INLINE_SERIES`]).
struct Merge {
    heads: Vec<Head>,
    driver: Option<Reader>,
    merged: usize,
    abort: bool,
    started: bool,
    done: bool,
    /// Frames ready to hand out, warnings before the series they preceded.
    ready: VecDeque<Result<ProxyFrame, QueryError>>,
}

impl Merge {
    fn new(
        receivers: Vec<(String, mpsc::Receiver<StoreItem>)>,
        abort: bool,
        driver: Option<Reader>,
    ) -> Self {
        let heads = receivers
            .into_iter()
            .map(|(address, rx)| Head {
                address,
                rx,
                pending: Vec::new().into_iter(),
                current: None,
            })
            .collect();
        Self {
            heads,
            driver,
            merged: 0,
            abort,
            started: false,
            done: false,
            ready: VecDeque::new(),
        }
    }

    /// The stream of merged frames; ends after the first error.
    fn into_stream(self) -> ProxyStream {
        Box::pin(futures::stream::unfold(self, |mut m| async move {
            m.next().await.map(|frame| (frame, m))
        }))
    }

    fn fail(&mut self, e: QueryError) {
        self.ready.push_back(Err(e));
        self.done = true;
    }

    fn push_warnings(&mut self, warnings: Vec<String>) {
        self.ready
            .extend(warnings.into_iter().map(|w| Ok(ProxyFrame::Warning(w))));
    }

    async fn next(&mut self) -> Option<Result<ProxyFrame, QueryError>> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            if self.done {
                return None;
            }
            if !self.started {
                self.started = true;
                self.fill().await;
                continue;
            }
            self.merge_one().await;
        }
    }

    /// Fills every head concurrently, so slow stores are waited for in parallel.
    async fn fill(&mut self) {
        let abort = self.abort;
        let fill = futures::future::join_all(self.heads.iter_mut().map(|h| async move {
            let mut warnings = Vec::new();
            let r = h.advance(abort, &mut warnings).await;
            (r, warnings)
        }));
        let results = driving(&mut self.driver, fill).await;
        for (r, warnings) in results {
            self.push_warnings(warnings);
            if let Err(e) = r {
                self.fail(e);
                return;
            }
        }
    }

    /// Collects the next series (smallest labels) from every head holding it.
    async fn merge_one(&mut self) {
        let Some(min) = self
            .heads
            .iter()
            .filter_map(|h| h.current.as_ref().map(|c| &c.labels))
            .min()
            .cloned()
        else {
            self.done = true;
            return;
        };
        let mut chunks = Vec::new();
        let mut warnings = Vec::new();
        // Take every head holding these labels; keep pulling while a store repeats them
        // (a series split across frames or replicas collapsed by label stripping).
        for i in 0..self.heads.len() {
            while self.heads[i]
                .current
                .as_ref()
                .is_some_and(|c| c.labels == min)
            {
                if let Some(s) = self.heads[i].current.take() {
                    if chunks.is_empty() {
                        chunks = s.chunks;
                    } else {
                        chunks.extend(s.chunks);
                    }
                }
                let advance = self.heads[i].advance(self.abort, &mut warnings);
                if let Err(e) = driving(&mut self.driver, advance).await {
                    self.push_warnings(warnings);
                    self.fail(e);
                    return;
                }
            }
        }
        self.push_warnings(warnings);
        self.merged += 1;
        if self.merged == INLINE_SERIES
            && let Some(reader) = self.driver.take()
        {
            tokio::spawn(reader);
        }
        dedup_chunks(&mut chunks);
        self.ready.push_back(Ok(ProxyFrame::Series(MergedSeries {
            labels: min,
            chunks,
        })));
    }
}

/// Sorts chunks by time range and drops byte-identical repeats (equal time range and
/// [`chunk_key`]), keeping the first. Keys are only computed for chunks sharing a time
/// range with another one.
fn dedup_chunks(chunks: &mut Vec<AggrChunk>) {
    let range = |c: &AggrChunk| (c.min_time, c.max_time);
    chunks.sort_by_key(range);
    if chunks.windows(2).all(|w| range(&w[0]) != range(&w[1])) {
        return;
    }
    let mut kept: Vec<AggrChunk> = Vec::with_capacity(chunks.len());
    let mut run_keys: Vec<(i64, i64, u64)> = Vec::new();
    for c in chunks.drain(..) {
        if kept.last().is_none_or(|k| range(k) != range(&c)) {
            run_keys.clear();
        }
        match chunk_key(&c) {
            Some(k) if run_keys.contains(&k) => {}
            Some(k) => {
                run_keys.push(k);
                kept.push(c);
            }
            None => kept.push(c),
        }
    }
    *chunks = kept;
}

/// Identity of a chunk for duplicate removal: its hash, or the XXH64 of its raw data.
fn chunk_key(chunk: &AggrChunk) -> Option<(i64, i64, u64)> {
    let raw = chunk.raw.as_ref()?;
    let hash = if raw.hash != 0 {
        raw.hash
    } else {
        xxhash_rust::xxh64::xxh64(&raw.data, 0)
    };
    Some((chunk.min_time, chunk.max_time, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use thanos_proto::thanos::Chunk;

    fn chunk(min: i64, max: i64, data: &'static [u8], hash: u64) -> AggrChunk {
        AggrChunk {
            min_time: min,
            max_time: max,
            raw: Some(Chunk {
                r#type: 0,
                data: bytes::Bytes::from_static(data),
                hash,
            }),
            ..AggrChunk::default()
        }
    }

    async fn feed(items: Vec<StoreItem>) -> mpsc::Receiver<StoreItem> {
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for i in items {
            assert!(tx.send(i).await.is_ok());
        }
        rx
    }

    fn series(name: &str, chunks: Vec<AggrChunk>) -> StoreItem {
        StoreItem::Series(vec![MergedSeries {
            labels: Labels::from_pairs([("__name__", name)]),
            chunks,
        }])
    }

    async fn run_merge(
        stores: Vec<Vec<StoreItem>>,
        abort: bool,
    ) -> Vec<Result<ProxyFrame, String>> {
        let mut receivers = Vec::new();
        for (i, items) in stores.into_iter().enumerate() {
            receivers.push((format!("s{i}"), feed(items).await));
        }
        Merge::new(receivers, abort, None)
            .into_stream()
            .map(|f| f.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    fn names(frames: &[Result<ProxyFrame, String>]) -> Vec<String> {
        frames
            .iter()
            .filter_map(|f| match f {
                Ok(ProxyFrame::Series(s)) => Some(format!(
                    "{}:{}",
                    s.labels.metric_name().unwrap_or_default(),
                    s.chunks.len()
                )),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn merges_sorted_streams_and_drops_identical_chunks() {
        let out = run_merge(
            vec![
                vec![
                    series("a", vec![chunk(0, 10, b"x", 1)]),
                    series("c", vec![chunk(0, 10, b"y", 0)]),
                ],
                vec![
                    series("a", vec![chunk(0, 10, b"x", 1), chunk(11, 20, b"z", 2)]),
                    series("b", vec![]),
                    series("c", vec![chunk(0, 10, b"y", 0)]),
                    // Same labels again: a series split across two frames.
                    series("c", vec![chunk(11, 20, b"w", 0)]),
                ],
            ],
            false,
        )
        .await;
        assert_eq!(names(&out), vec!["a:2", "b:0", "c:2"]);
    }

    #[test]
    fn identical_chunks_are_dropped_after_sorting() {
        let mut chunks = vec![
            chunk(11, 20, b"z", 0),
            chunk(0, 10, b"x", 0),
            chunk(0, 10, b"y", 0),
            chunk(0, 10, b"x", 0),
            chunk(5, 15, b"x", 0),
            chunk(0, 10, b"w", 7),
            chunk(0, 10, b"v", 7),
        ];
        dedup_chunks(&mut chunks);
        let got: Vec<(i64, &[u8])> = chunks
            .iter()
            .map(|c| (c.min_time, c.raw.as_ref().map_or(&b""[..], |r| &r.data[..])))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, &b"x"[..]),
                (0, &b"y"[..]),
                (0, &b"w"[..]),
                (5, &b"x"[..]),
                (11, &b"z"[..])
            ],
            "same range and hash (given or computed) is one chunk"
        );
    }

    #[tokio::test]
    async fn failures_are_warnings_or_errors_by_strategy() {
        let failing = || {
            vec![
                series("a", vec![]),
                StoreItem::Failed(QueryError::StoreTimeout {
                    address: "s1".into(),
                    timeout: Duration::from_millis(5),
                }),
            ]
        };
        let out = run_merge(vec![vec![series("b", vec![])], failing()], false).await;
        assert_eq!(names(&out), vec!["a:0", "b:0"]);
        assert!(out.iter().any(
            |f| matches!(f, Ok(ProxyFrame::Warning(w)) if w.contains("failed to receive any data"))
        ));

        let out = run_merge(vec![vec![series("b", vec![])], failing()], true).await;
        let last = out.last().cloned();
        assert!(
            matches!(last, Some(Err(ref e)) if e.contains("failed to receive any data")),
            "{last:?}"
        );
    }
}
