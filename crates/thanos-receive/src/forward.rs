//! Distribution of a write across the hashring: replication, forwarding to peers and the
//! per-series write quorum (mirrors the forwarding half of Thanos
//! `pkg/receive/handler.go` and its peer group; components.md §3.6).
//!
//! A [`Distributor`] is what every write path calls (the HTTP handler and
//! `thanos.WriteableStore/RemoteWrite`):
//!
//! * **IngestorOnly** ([`Distributor::ingestor`]): everything is written locally.
//! * **Router modes** ([`Distributor::router`]): for a fresh request (replica 0) every
//!   series is placed on `replication_factor` endpoints (`GetN(tenant, series, r)` for
//!   r in 0..RF); series are grouped per (endpoint, r) into one `thanos.WriteRequest`
//!   (`timeseriesTenantData`, `replica = r + 1`). The group of `--receive.local-endpoint`
//!   is written in-process, the others are sent to the peers over gRPC
//!   ([`GrpcPeers`]). In RouterIngestor mode a request that already carries a replica
//!   number r > 0 only computes replica r (normally this node) and needs one success; in
//!   RouterOnly mode the replica number is ignored, so routing trees work.
//! * **Quorum** per series ([`ReplicaTally`]): the call returns as soon as every series
//!   reached quorum or failed by conflicts; otherwise when all replies are in or
//!   `--receive-forward-timeout` expired. Writes still in flight when it returns keep
//!   running to completion. A failure reports its cause ([`ReplicationFailure`]): 409 for
//!   conflicts, 503 for unavailable / mixed failures.
//! * **Peers**: at most `--receive.forward.async-workers` concurrent writes per peer; a
//!   peer answering `Unavailable` is skipped ("backing off forward request") for an
//!   exponentially growing time capped by `--receive-forward-max-backoff`, reset by a
//!   success or a hashring change.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use thanos_proto::thanos::writeable_store_client::WriteableStoreClient;
use thanos_proto::thanos::{TimeSeriesTenantTuple, WriteRequest};
use thanos_server::{GrpcClient, MAX_MESSAGE_SIZE};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tonic::Status;
use tonic::transport::Channel;

use crate::error::{ReplicationFailure, WriteError, class_of_status};
use crate::grpc_snappy::SnappyCompression;
use crate::hashring::Hashring;
use crate::hashring::quorum::{
    ErrorClass, ReplicaTally, SeriesOutcome, request_cause, write_quorum,
};
use crate::reload::SharedHashring;
use crate::write::Batch;
use crate::writer::{LocalWriter, Written};

/// Shortest backoff of a peer that answered `Unavailable`.
pub const MIN_PEER_BACKOFF: Duration = Duration::from_millis(100);

/// Sends forwarded writes to other receivers.
pub trait Peers: Send + Sync + 'static {
    /// Sends `request` to the receiver at `endpoint` (its address as written in the
    /// hashring); `timeout` is the time left of the forward deadline.
    fn remote_write(
        &self,
        endpoint: &str,
        request: WriteRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), Status>>;
}

/// gRPC compression of forwarded writes (`--receive.grpc-compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed messages.
    None,
    /// Thanos's framed snappy (see [`crate::grpc_snappy`]).
    Snappy,
}

#[derive(Clone)]
enum PeerClient {
    Plain(WriteableStoreClient<Channel>),
    Snappy(WriteableStoreClient<SnappyCompression<Channel>>),
}

/// [`Peers`] over gRPC `thanos.WriteableStore/RemoteWrite`, one lazily connected channel
/// per endpoint (with the client TLS of `--remote-write.client-tls-*`).
pub struct GrpcPeers {
    client: GrpcClient,
    compression: Compression,
    clients: Mutex<HashMap<String, PeerClient>>,
}

impl std::fmt::Debug for GrpcPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcPeers")
            .field("client", &self.client)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl GrpcPeers {
    /// Peers reached with `client`'s TLS settings and `compression`.
    pub fn new(client: GrpcClient, compression: Compression) -> Self {
        Self {
            client,
            compression,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client_for(&self, endpoint: &str) -> Result<PeerClient, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(endpoint) {
            return Ok(client.clone());
        }
        let target = self
            .client
            .endpoint(endpoint)
            .map_err(|e| Status::unavailable(format!("invalid peer endpoint {endpoint}: {e}")))?;
        let channel = self.client.connect_lazy(target);
        let client = match self.compression {
            Compression::None => PeerClient::Plain(
                WriteableStoreClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            ),
            Compression::Snappy => PeerClient::Snappy(
                WriteableStoreClient::new(SnappyCompression::new(channel, MAX_MESSAGE_SIZE))
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE),
            ),
        };
        clients.insert(endpoint.to_owned(), client.clone());
        Ok(client)
    }
}

impl Peers for GrpcPeers {
    fn remote_write(
        &self,
        endpoint: &str,
        request: WriteRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), Status>> {
        let client = self.client_for(endpoint);
        Box::pin(async move {
            let mut request = tonic::Request::new(request);
            request.set_timeout(timeout);
            match client? {
                PeerClient::Plain(mut c) => c.remote_write(request).await.map(|_| ()),
                PeerClient::Snappy(mut c) => c.remote_write(request).await.map(|_| ()),
            }
        })
    }
}

/// Settings of a router [`Distributor`].
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// `--receive.local-endpoint`: the hashring endpoint written in-process (None in
    /// RouterOnly mode).
    pub local_endpoint: Option<String>,
    /// `--receive-forward-timeout`: deadline of the whole fan-out of one request.
    pub forward_timeout: Duration,
    /// `--receive-forward-max-backoff`: longest backoff of an unavailable peer.
    pub max_backoff: Duration,
    /// `--receive.forward.async-workers`: concurrent writes per peer (at least 1).
    pub async_workers: usize,
}

impl Default for RouterOptions {
    fn default() -> Self {
        Self {
            local_endpoint: None,
            forward_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            async_workers: 5,
        }
    }
}

struct PeerState {
    workers: Arc<Semaphore>,
    backoff: Duration,
    retry_at: Option<Instant>,
}

struct PeerStates {
    generation: u64,
    peers: HashMap<String, PeerState>,
}

/// Worker limits and backoff per peer in front of a [`Peers`] implementation.
struct PeerGroup {
    peers: Arc<dyn Peers>,
    max_backoff: Duration,
    workers: usize,
    states: Mutex<PeerStates>,
}

impl PeerGroup {
    /// The worker semaphore of `endpoint`, or the backoff error while it backs off.
    fn admit(&self, generation: u64, endpoint: &str) -> Result<Arc<Semaphore>, Status> {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if generation > states.generation {
            states.generation = generation;
            states.peers.clear();
        }
        let workers = self.workers;
        let state = match states.peers.entry(endpoint.to_owned()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(PeerState {
                workers: Arc::new(Semaphore::new(workers)),
                backoff: Duration::ZERO,
                retry_at: None,
            }),
        };
        if let Some(at) = state.retry_at
            && at > Instant::now()
        {
            return Err(Status::unavailable(format!(
                "backing off forward request for endpoint {endpoint}"
            )));
        }
        Ok(Arc::clone(&state.workers))
    }

    fn record(&self, generation: u64, endpoint: &str, unavailable: bool) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if generation < states.generation {
            return;
        }
        let Some(state) = states.peers.get_mut(endpoint) else {
            return;
        };
        if unavailable {
            state.backoff =
                (state.backoff * 2).clamp(MIN_PEER_BACKOFF, self.max_backoff.max(MIN_PEER_BACKOFF));
            state.retry_at = Some(Instant::now() + state.backoff);
        } else {
            state.backoff = Duration::ZERO;
            state.retry_at = None;
        }
    }

    async fn forward(
        self: Arc<Self>,
        generation: u64,
        endpoint: String,
        request: WriteRequest,
        deadline: Instant,
    ) -> Result<(), Status> {
        let workers = self.admit(generation, &endpoint)?;
        let _permit = workers
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("peer worker pool closed"))?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let result = self.peers.remote_write(&endpoint, request, timeout).await;
        match &result {
            Ok(()) => self.record(generation, &endpoint, false),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                self.record(generation, &endpoint, true);
            }
            Err(_) => {}
        }
        result
    }
}

/// Forwarding and replication metrics.
#[derive(Clone)]
struct ForwardMetrics {
    forward_requests: IntCounterVec,
    replications: IntCounterVec,
}

impl ForwardMetrics {
    fn new(registry: &Registry, replication_factor: u64) -> Result<Self, prometheus::Error> {
        let forward_requests = IntCounterVec::new(
            Opts::new(
                "thanos_receive_forward_requests_total",
                "The number of forward requests.",
            ),
            &["result"],
        )?;
        let replications = IntCounterVec::new(
            Opts::new(
                "thanos_receive_replications_total",
                "The number of replication operations done by the receiver. The success of replication is fulfilled when a quorum is met.",
            ),
            &["result"],
        )?;
        let factor = IntGauge::new(
            "thanos_receive_replication_factor",
            "The number of times to replicate incoming write requests.",
        )?;
        factor.set(i64::try_from(replication_factor).unwrap_or(i64::MAX));
        registry.register(Box::new(forward_requests.clone()))?;
        registry.register(Box::new(replications.clone()))?;
        registry.register(Box::new(factor))?;
        Ok(Self {
            forward_requests,
            replications,
        })
    }
}

fn result_label(ok: bool) -> &'static str {
    if ok { "success" } else { "error" }
}

struct Router {
    ring: Arc<SharedHashring>,
    options: RouterOptions,
    peers: Arc<PeerGroup>,
}

/// Distributes writes (see the module docs); shared by the HTTP and gRPC write paths.
pub struct Distributor {
    local: Option<LocalWriter>,
    router: Option<Router>,
    metrics: ForwardMetrics,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor")
            .field("local", &self.local.is_some())
            .field("options", &self.router.as_ref().map(|r| &r.options))
            .finish_non_exhaustive()
    }
}

/// One (endpoint, replica) group of a request.
struct Group {
    endpoint: String,
    replica: u64,
    local: bool,
    series: Vec<usize>,
}

/// Result of one group write: the error class and message on failure.
type GroupResult = Result<(), (ErrorClass, String)>;

impl Distributor {
    /// IngestorOnly: every write goes to `local`. Registers the forwarding metrics
    /// (replication factor 1) on `registry`.
    pub fn ingestor(local: LocalWriter, registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(Self {
            local: Some(local),
            router: None,
            metrics: ForwardMetrics::new(registry, 1)?,
        })
    }

    /// A router distributing by `ring`: RouterIngestor when `local` is given (written
    /// for the endpoint equal to [`RouterOptions::local_endpoint`]), RouterOnly
    /// otherwise. Registers `thanos_receive_forward_requests_total{result}`,
    /// `thanos_receive_replications_total{result}` and
    /// `thanos_receive_replication_factor` on `registry`.
    pub fn router(
        ring: Arc<SharedHashring>,
        local: Option<LocalWriter>,
        peers: Arc<dyn Peers>,
        options: RouterOptions,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let metrics = ForwardMetrics::new(registry, ring.current().replication_factor())?;
        let peers = Arc::new(PeerGroup {
            peers,
            max_backoff: options.max_backoff,
            workers: options.async_workers.max(1),
            states: Mutex::new(PeerStates {
                generation: ring.generation(),
                peers: HashMap::new(),
            }),
        });
        Ok(Self {
            local,
            router: Some(Router {
                ring,
                options,
                peers,
            }),
            metrics,
        })
    }

    /// Writes `batch` for `tenant`. `replica` is the 1-based replica number the request
    /// carried (0 = fresh from a client); only RouterIngestor honours it. Returns the
    /// samples written (locally stored ones in IngestorOnly mode, all valid samples once
    /// quorum is reached in router modes) and the result. Rejections
    /// recorded while decoding make the request fail as [`WriteError::Rejected`] after
    /// the valid series were written, unless replication itself failed.
    pub async fn write(
        &self,
        tenant: &str,
        mut batch: Batch,
        replica: i64,
    ) -> (Written, Result<(), WriteError>) {
        let Some(router) = &self.router else {
            let Some(local) = self.local.clone() else {
                return (Written::default(), Err(WriteError::NotReady));
            };
            let tenant_owned = tenant.to_owned();
            return match tokio::task::spawn_blocking(move || local.write(&tenant_owned, &batch))
                .await
            {
                Ok(written) => written,
                Err(e) => (
                    Written::default(),
                    Err(WriteError::Task {
                        tenant: tenant.to_owned(),
                        reason: e.to_string(),
                    }),
                ),
            };
        };
        let replica = if self.local.is_some() { replica } else { 0 };
        let rejections = std::mem::take(&mut batch.rejections);
        let written = Written {
            samples: batch.series.iter().map(|s| s.samples.len() as u64).sum(),
            histograms: batch.num_histograms() as u64,
        };
        if !batch.series.is_empty()
            && let Err(err) = self
                .replicate(router, tenant, Arc::new(batch), replica)
                .await
        {
            return (Written::default(), Err(err));
        }
        if rejections.is_empty() {
            (written, Ok(()))
        } else {
            (written, Err(WriteError::Rejected(Box::new(rejections))))
        }
    }

    async fn replicate(
        &self,
        router: &Router,
        tenant: &str,
        batch: Arc<Batch>,
        replica: i64,
    ) -> Result<(), WriteError> {
        let generation = router.ring.generation();
        let ring = router.ring.current();
        let rf = ring.replication_factor();
        let (replicas, quorum) = match u64::try_from(replica) {
            Ok(0) => ((0..rf).collect::<Vec<u64>>(), write_quorum(rf)),
            Ok(r) if r <= rf => (vec![r - 1], 1),
            _ => {
                return Err(WriteError::InvalidReplica {
                    replica,
                    replication_factor: rf,
                });
            }
        };
        let local_endpoint = router
            .options
            .local_endpoint
            .as_deref()
            .filter(|_| self.local.is_some());
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<(&str, u64), usize> = HashMap::new();
        for (i, series) in batch.series.iter().enumerate() {
            for &r in &replicas {
                let endpoint = ring.get_n(tenant, &series.labels, r).map_err(|source| {
                    WriteError::Hashring {
                        tenant: tenant.to_owned(),
                        source,
                    }
                })?;
                let g = *index.entry((&endpoint.address, r)).or_insert_with(|| {
                    groups.push(Group {
                        endpoint: endpoint.address.clone(),
                        replica: r,
                        local: local_endpoint.is_some_and(|l| endpoint.has_address(l)),
                        series: Vec::new(),
                    });
                    groups.len() - 1
                });
                groups[g].series.push(i);
            }
        }
        drop(index);

        let deadline = Instant::now() + router.options.forward_timeout;
        let (tx, mut rx) = mpsc::unbounded_channel::<(usize, GroupResult)>();
        for (g, group) in groups.iter().enumerate() {
            let task = self.spawn_group(router, generation, tenant, &batch, group, deadline);
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = task.await;
                let _ = tx.send((g, result));
            });
        }
        drop(tx);

        let n = batch.series.len();
        let mut tallies = vec![ReplicaTally::with_quorum(replicas.len() as u64, quorum); n];
        let mut decided: Vec<Option<SeriesOutcome>> = vec![None; n];
        let mut undecided = n;
        let mut errors: Vec<String> = Vec::new();
        while undecided > 0 {
            let (g, result) = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(_) => {
                    errors.push(format!(
                        "forwarding timed out after {:?}",
                        router.options.forward_timeout
                    ));
                    break;
                }
            };
            if let Err((_, message)) = &result
                && !errors.contains(message)
            {
                errors.push(message.clone());
            }
            for &i in &groups[g].series {
                if decided[i].is_some() {
                    continue;
                }
                match &result {
                    Ok(()) => tallies[i].record_success(),
                    Err((class, _)) => tallies[i].record_error(*class),
                }
                let outcome = tallies[i].outcome();
                if outcome != SeriesOutcome::Pending {
                    decided[i] = Some(outcome);
                    undecided -= 1;
                }
            }
        }
        let causes = decided.iter().zip(&tallies).filter_map(|(d, t)| match d {
            Some(SeriesOutcome::Succeeded) => None,
            Some(SeriesOutcome::Failed(cause)) => Some(*cause),
            Some(SeriesOutcome::Pending) | None => Some(t.cause()),
        });
        let cause = request_cause(causes);
        if replicas.len() > 1 {
            self.metrics
                .replications
                .with_label_values(&[result_label(cause.is_none())])
                .inc();
        }
        match cause {
            None => Ok(()),
            Some(cause) => {
                tracing::debug!(
                    tenant,
                    ?cause,
                    errors = errors.len(),
                    "replicated write failed"
                );
                Err(WriteError::Replication(Box::new(ReplicationFailure {
                    cause,
                    errors,
                })))
            }
        }
    }

    /// The write of one group, to be spawned (it runs to completion even if the request
    /// returns earlier).
    fn spawn_group(
        &self,
        router: &Router,
        generation: u64,
        tenant: &str,
        batch: &Arc<Batch>,
        group: &Group,
        deadline: Instant,
    ) -> BoxFuture<'static, GroupResult> {
        let tenant = tenant.to_owned();
        let batch = Arc::clone(batch);
        let series = group.series.clone();
        let endpoint = group.endpoint.clone();
        if group.local
            && let Some(local) = self.local.clone()
        {
            return Box::pin(async move {
                let joined = tokio::task::spawn_blocking(move || {
                    if series.len() == batch.series.len() {
                        local.write(&tenant, &batch)
                    } else {
                        let sub = Batch::from_series(
                            series.iter().map(|&i| batch.series[i].clone()).collect(),
                        );
                        local.write(&tenant, &sub)
                    }
                })
                .await;
                match joined {
                    Ok((_, Ok(()))) => Ok(()),
                    Ok((_, Err(err))) => Err((
                        err.class(),
                        format!("writing to local endpoint {endpoint}: {err}"),
                    )),
                    Err(err) => Err((
                        ErrorClass::Other,
                        format!("writing to local endpoint {endpoint}: {err}"),
                    )),
                }
            });
        }
        let peers = Arc::clone(&router.peers);
        let counter = self.metrics.forward_requests.clone();
        let replica = group.replica;
        Box::pin(async move {
            let request = WriteRequest {
                timeseries: Vec::new(),
                tenant: String::new(),
                replica: i64::try_from(replica + 1).unwrap_or(i64::MAX),
                timeseries_tenant_data: vec![TimeSeriesTenantTuple {
                    timeseries: series.iter().map(|&i| batch.series[i].to_proto()).collect(),
                    tenant,
                }],
            };
            drop(batch);
            let sent = tokio::time::timeout_at(
                deadline,
                peers.forward(generation, endpoint.clone(), request, deadline),
            )
            .await;
            let result = match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(status)) => Err((
                    class_of_status(status.code()),
                    format!(
                        "forwarding request to endpoint {endpoint}: rpc error: code = {:?} desc = {}",
                        status.code(),
                        status.message()
                    ),
                )),
                Err(_) => Err((
                    ErrorClass::Other,
                    format!("forwarding request to endpoint {endpoint}: context deadline exceeded"),
                )),
            };
            counter
                .with_label_values(&[result_label(result.is_ok())])
                .inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashring::{Algorithm, MultiHashring, parse_config};
    use crate::head::HeadOptions;
    use crate::multitsdb::MultiTsdb;
    use crate::write::SeriesSamples;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use thanos_model::{Labels, Sample};

    /// How a fake peer answers.
    #[derive(Clone, Copy)]
    enum Behavior {
        Ok,
        Fail(tonic::Code),
        /// Succeeds after this long.
        Slow(Duration),
    }

    #[derive(Default)]
    struct FakePeers {
        behavior: Mutex<HashMap<String, Behavior>>,
        received: Arc<Mutex<Vec<(String, WriteRequest)>>>,
        calls: AtomicUsize,
    }

    impl FakePeers {
        fn with(behaviors: &[(&str, Behavior)]) -> Arc<Self> {
            let peers = Self::default();
            for (endpoint, b) in behaviors {
                peers
                    .behavior
                    .lock()
                    .unwrap()
                    .insert((*endpoint).to_owned(), *b);
            }
            Arc::new(peers)
        }

        fn received_by(&self, endpoint: &str) -> Vec<WriteRequest> {
            self.received
                .lock()
                .unwrap()
                .iter()
                .filter(|(e, _)| e == endpoint)
                .map(|(_, r)| r.clone())
                .collect()
        }
    }

    impl Peers for FakePeers {
        fn remote_write(
            &self,
            endpoint: &str,
            request: WriteRequest,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<(), Status>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let behavior = self
                .behavior
                .lock()
                .unwrap()
                .get(endpoint)
                .copied()
                .unwrap_or(Behavior::Ok);
            let received = Arc::clone(&self.received);
            let record = (endpoint.to_owned(), request);
            Box::pin(async move {
                match behavior {
                    Behavior::Ok => {
                        received.lock().unwrap().push(record);
                        Ok(())
                    }
                    Behavior::Fail(code) => Err(Status::new(code, "fake failure")),
                    Behavior::Slow(d) => {
                        tokio::time::sleep(d).await;
                        received.lock().unwrap().push(record);
                        Ok(())
                    }
                }
            })
        }
    }

    fn ring(endpoints: &[&str], rf: u64) -> Arc<SharedHashring> {
        let json = serde_json::json!([{ "endpoints": endpoints }]).to_string();
        let configs = parse_config(json.as_bytes()).unwrap();
        Arc::new(SharedHashring::new(
            MultiHashring::new(&configs, Algorithm::Hashmod, rf).unwrap(),
        ))
    }

    fn batch(n: usize) -> Batch {
        let now = crate::writer::now_ms();
        Batch::from_series(
            (0..n)
                .map(|i| SeriesSamples {
                    histograms: Vec::new(),
                    labels: Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]),
                    samples: vec![Sample::new(now, i as f64)],
                })
                .collect(),
        )
    }

    fn router(
        endpoints: &[&str],
        rf: u64,
        peers: Arc<FakePeers>,
        local: Option<(&str, LocalWriter)>,
        timeout: Duration,
    ) -> Distributor {
        let options = RouterOptions {
            local_endpoint: local.as_ref().map(|(e, _)| (*e).to_owned()),
            forward_timeout: timeout,
            max_backoff: Duration::from_secs(5),
            async_workers: 2,
        };
        Distributor::router(
            ring(endpoints, rf),
            local.map(|(_, w)| w),
            peers,
            options,
            &Registry::new(),
        )
        .unwrap()
    }

    async fn status_of(d: &Distributor, replica: i64) -> u16 {
        match d.write("tenant", batch(20), replica).await.1 {
            Ok(()) => 200,
            Err(err) => err.http_status().as_u16(),
        }
    }

    use Behavior::Fail;
    use tonic::Code;

    #[tokio::test]
    async fn quorum_table_of_thanos_unit_tests() {
        let nodes3 = ["a:1", "b:1", "c:1"];
        let nodes5 = ["a:1", "b:1", "c:1", "d:1", "e:1"];
        /// (name, nodes, replication factor, peer behaviours, expected status).
        type Case<'a> = (&'a str, &'a [&'a str], u64, Vec<(&'a str, Behavior)>, u16);
        let cases: Vec<Case<'_>> = vec![
            ("all ok", &nodes3, 3, vec![], 200),
            (
                "one conflict",
                &nodes3,
                3,
                vec![("a:1", Fail(Code::AlreadyExists))],
                200,
            ),
            (
                "two conflicts",
                &nodes3,
                3,
                vec![
                    ("a:1", Fail(Code::AlreadyExists)),
                    ("b:1", Fail(Code::AlreadyExists)),
                ],
                409,
            ),
            (
                "conflict and commit error",
                &nodes3,
                3,
                vec![
                    ("a:1", Fail(Code::AlreadyExists)),
                    ("b:1", Fail(Code::Internal)),
                ],
                503,
            ),
            (
                "two commit errors",
                &nodes3,
                3,
                vec![("a:1", Fail(Code::Internal)), ("c:1", Fail(Code::Internal))],
                503,
            ),
            (
                "two conflicts and a commit error",
                &nodes3,
                3,
                vec![
                    ("a:1", Fail(Code::AlreadyExists)),
                    ("b:1", Fail(Code::AlreadyExists)),
                    ("c:1", Fail(Code::Internal)),
                ],
                409,
            ),
            (
                "one commit error",
                &nodes3,
                3,
                vec![("b:1", Fail(Code::Internal))],
                200,
            ),
            (
                "rf5 two commit errors",
                &nodes5,
                5,
                vec![("a:1", Fail(Code::Internal)), ("b:1", Fail(Code::Internal))],
                200,
            ),
            (
                "rf1 conflict",
                &nodes3,
                1,
                vec![
                    ("a:1", Fail(Code::AlreadyExists)),
                    ("b:1", Fail(Code::AlreadyExists)),
                    ("c:1", Fail(Code::AlreadyExists)),
                ],
                409,
            ),
        ];
        for (name, nodes, rf, behaviors, want) in cases {
            let peers = FakePeers::with(&behaviors);
            let d = router(nodes, rf, peers, None, Duration::from_secs(5));
            assert_eq!(status_of(&d, 0).await, want, "case {name}");
        }
    }

    #[tokio::test]
    async fn groups_per_endpoint_and_replica_and_writes_local_in_process() {
        let tsdb = Arc::new(MultiTsdb::new(HeadOptions::default(), &Registry::new()).unwrap());
        let peers = FakePeers::with(&[]);
        let d = router(
            &["a:1", "b:1", "c:1"],
            2,
            Arc::clone(&peers),
            Some(("b:1", LocalWriter::new(Arc::clone(&tsdb)))),
            Duration::from_secs(5),
        );
        let (written, result) = d.write("tenant", batch(30), 0).await;
        result.unwrap();
        assert_eq!(written.samples, 30);
        // Let writes beyond quorum finish.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let local = tsdb.get("tenant").map_or(0, |h| h.num_series());
        let a = peers.received_by("a:1");
        let c = peers.received_by("c:1");
        assert!(
            peers.received_by("b:1").is_empty(),
            "local endpoint forwarded"
        );
        let count = |reqs: &[WriteRequest]| -> u64 {
            reqs.iter()
                .map(|r| r.timeseries_tenant_data[0].timeseries.len() as u64)
                .sum()
        };
        // Every series stored exactly twice across the three nodes.
        assert_eq!(local + count(&a) + count(&c), 60);
        assert!(local > 0 && count(&a) > 0 && count(&c) > 0);
        for r in a.iter().chain(&c) {
            assert!(r.replica == 1 || r.replica == 2, "replica {}", r.replica);
            assert_eq!(r.timeseries_tenant_data.len(), 1);
            assert_eq!(r.timeseries_tenant_data[0].tenant, "tenant");
            assert!(r.timeseries.is_empty() && r.tenant.is_empty());
        }
        // One request per (endpoint, replica) at most.
        assert!(a.len() <= 2 && c.len() <= 2);

        // An already-replicated request is only written to its replica's node.
        let calls = peers.calls.load(Ordering::SeqCst);
        let (_, result) = d.write("tenant2", batch(30), 1).await;
        result.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let forwarded = peers.calls.load(Ordering::SeqCst) - calls;
        let local2 = tsdb.get("tenant2").map_or(0, |h| h.num_series());
        let remote2: u64 = peers
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.timeseries_tenant_data[0].tenant == "tenant2")
            .map(|(_, r)| r.timeseries_tenant_data[0].timeseries.len() as u64)
            .sum();
        assert_eq!(local2 + remote2, 30, "each series once");
        assert!(forwarded <= 2);
        // Replica numbers above the replication factor are bad requests.
        assert_eq!(status_of(&d, 3).await, 400);
    }

    #[tokio::test]
    async fn router_only_ignores_replica_numbers() {
        let peers = FakePeers::with(&[]);
        let d = router(
            &["a:1", "b:1"],
            1,
            Arc::clone(&peers),
            None,
            Duration::from_secs(5),
        );
        assert_eq!(status_of(&d, 7).await, 200);
        let total: usize = peers
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, r)| {
                assert_eq!(r.replica, 1);
                r.timeseries_tenant_data[0].timeseries.len()
            })
            .sum();
        assert_eq!(total, 20);
    }

    #[tokio::test]
    async fn returns_at_quorum_and_times_out_without_it() {
        let slow = Behavior::Slow(Duration::from_secs(30));
        let peers = FakePeers::with(&[("c:1", slow)]);
        let d = router(
            &["a:1", "b:1", "c:1"],
            3,
            peers,
            None,
            Duration::from_secs(10),
        );
        let start = std::time::Instant::now();
        assert_eq!(status_of(&d, 0).await, 200);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "waited for the slow peer"
        );

        let peers = FakePeers::with(&[("b:1", slow), ("c:1", slow)]);
        let d = router(
            &["a:1", "b:1", "c:1"],
            3,
            peers,
            None,
            Duration::from_millis(300),
        );
        let start = std::time::Instant::now();
        let err = d.write("tenant", batch(5), 0).await.1.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(err.http_status().as_u16(), 503, "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn unavailable_peers_are_backed_off_until_success_or_ring_change() {
        let peers = FakePeers::with(&[("a:1", Fail(Code::Unavailable))]);
        let d = router(
            &["a:1"],
            1,
            Arc::clone(&peers),
            None,
            Duration::from_secs(5),
        );
        let err = d.write("tenant", batch(3), 0).await.1.unwrap_err();
        assert_eq!(err.http_status().as_u16(), 503);
        assert_eq!(peers.calls.load(Ordering::SeqCst), 1);
        // Backing off: fails fast without calling the peer.
        let err = d.write("tenant", batch(3), 0).await.1.unwrap_err();
        assert!(err.to_string().contains("backing off"), "{err}");
        assert_eq!(peers.calls.load(Ordering::SeqCst), 1);
        // After the backoff the peer is tried again, and a success clears it.
        peers
            .behavior
            .lock()
            .unwrap()
            .insert("a:1".into(), Behavior::Ok);
        tokio::time::sleep(MIN_PEER_BACKOFF + Duration::from_millis(50)).await;
        d.write("tenant", batch(3), 0).await.1.unwrap();
        assert_eq!(peers.calls.load(Ordering::SeqCst), 2);
        // A hashring change resets the backoff at once.
        peers
            .behavior
            .lock()
            .unwrap()
            .insert("a:1".into(), Fail(Code::Unavailable));
        assert!(d.write("tenant", batch(3), 0).await.1.is_err());
        let router = d.router.as_ref().unwrap();
        let json = br#"[{"endpoints": ["a:1"]}]"#;
        let configs = parse_config(json).unwrap();
        router
            .ring
            .replace(MultiHashring::new(&configs, Algorithm::Hashmod, 1).unwrap());
        assert!(d.write("tenant", batch(3), 0).await.1.is_err());
        assert_eq!(
            peers.calls.load(Ordering::SeqCst),
            4,
            "retried after ring change"
        );
    }
}
