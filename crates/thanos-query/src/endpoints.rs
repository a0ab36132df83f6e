//! The set of StoreAPI endpoints the querier fans out to (Thanos `pkg/query/endpointset.go`).
//!
//! Every endpoint is polled with `thanos.info.Info/Info` on a fixed period (5s by default).
//! A successful answer makes the endpoint healthy and records what it serves: component
//! type, external label sets and the time range of its data. A failed call marks it
//! unhealthy (keeping the last error); unhealthy endpoints stay listed in `/api/v1/stores`
//! but are not queried until a later poll succeeds again.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::{IntGaugeVec, Opts, Registry};
use thanos_model::{Label, Labels, Matcher};
use thanos_proto::thanos::ZLabelSet;
use thanos_proto::thanos::info::{InfoRequest, InfoResponse, info_client::InfoClient};
use thanos_proto::thanos::store_client::StoreClient;
use thanos_server::GrpcChannel;
use thanos_server::GrpcClient;
use tokio_util::sync::CancellationToken;

use crate::dns::{self, Resolver, Spec, SystemResolver};
use crate::error::QueryError;
use crate::sd::{self, SdSource};

/// Default period and timeout of Info polls (hidden `--endpoint.info-timeout`).
pub const DEFAULT_INFO_INTERVAL: Duration = Duration::from_secs(5);

/// What the last Info poll told about one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStatus {
    /// The address as configured (`host:port`).
    pub address: String,
    /// `ComponentType` from Info (`store`, `receive`, `query`, …); empty until first answer.
    pub component_type: String,
    /// Whether the last Info call succeeded and the endpoint serves the StoreAPI.
    pub healthy: bool,
    /// Time of the last Info call.
    pub last_check: Option<SystemTime>,
    /// Error of the last Info call, if it failed.
    pub last_error: Option<String>,
    /// Advertised external label sets (empty sets dropped).
    pub label_sets: Vec<Labels>,
    /// Minimum time (ms) of the endpoint's data.
    pub min_time: i64,
    /// Maximum time (ms) of the endpoint's data.
    pub max_time: i64,
    /// Whether the endpoint strips `without_replica_labels` itself.
    pub supports_without_replica_labels: bool,
    /// Whether Info advertises the metric metadata API (`thanos.Metadata`).
    pub serves_metadata: bool,
}

impl EndpointStatus {
    fn new(address: &str) -> Self {
        Self {
            address: address.to_owned(),
            component_type: String::new(),
            healthy: false,
            last_check: None,
            last_error: None,
            label_sets: Vec::new(),
            min_time: i64::MIN,
            max_time: i64::MAX,
            supports_without_replica_labels: false,
            serves_metadata: false,
        }
    }

    /// Whether a query over `[mint, maxt]` with `matchers` can get data from this endpoint:
    /// the time ranges intersect and at least one advertised label set is compatible with
    /// the matchers (a matcher only rules a set out when the set has that label and the
    /// value does not match). Endpoints advertising no label set are always compatible.
    pub fn matches(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> bool {
        if mint > self.max_time || maxt < self.min_time {
            return false;
        }
        self.label_sets.is_empty()
            || self.label_sets.iter().any(|set| {
                matchers
                    .iter()
                    .all(|m| set.get(m.name()).is_none_or(|v| m.matches(v)))
            })
    }

    fn apply_info(&mut self, info: InfoResponse) {
        self.component_type = info.component_type;
        self.serves_metadata = info.metric_metadata.is_some();
        self.label_sets = info
            .label_sets
            .into_iter()
            .filter_map(|s| labels_from_proto(s).ok())
            .filter(|s| !s.is_empty())
            .collect();
        match info.store {
            Some(store) => {
                self.healthy = true;
                self.last_error = None;
                self.min_time = store.min_time;
                self.max_time = store.max_time;
                self.supports_without_replica_labels = store.supports_without_replica_labels;
            }
            None => {
                self.healthy = false;
                self.last_error = Some("endpoint does not serve the StoreAPI".to_owned());
            }
        }
    }
}

/// Whether `address` passes the `storeMatch[]` sets.
fn address_selected(address: &str, store_matchers: &[Vec<Matcher>]) -> bool {
    store_matchers.is_empty()
        || store_matchers.iter().any(|set| {
            set.iter()
                .filter(|m| m.name() == ADDRESS_LABEL)
                .all(|m| m.matches(address))
        })
}

/// The pseudo label `storeMatch[]` selectors match store addresses with.
pub const ADDRESS_LABEL: &str = "__address__";

/// Converts a proto label set into sorted [`Labels`].
pub(crate) fn labels_from_proto(set: ZLabelSet) -> Result<Labels, thanos_model::ModelError> {
    Labels::new(
        set.labels
            .into_iter()
            .map(|l| Label::new(l.name, l.value))
            .collect(),
    )
}

/// Parses specs, dropping duplicates.
fn parse_specs(raw: &[String]) -> Result<Vec<(String, Spec)>, QueryError> {
    let mut specs: Vec<(String, Spec)> = Vec::new();
    for raw in raw {
        if !specs.iter().any(|(r, _)| r == raw) {
            specs.push((raw.clone(), Spec::parse(raw)?));
        }
    }
    Ok(specs)
}

/// A healthy endpoint a query can be sent to.
#[derive(Debug, Clone)]
pub struct StoreRef {
    /// The endpoint's status at the time the query started.
    pub status: EndpointStatus,
    /// A StoreAPI client on the endpoint's channel.
    pub client: StoreClient<GrpcChannel>,
    /// The endpoint's channel, for calls made without the generated client.
    pub channel: GrpcChannel,
}

#[derive(Debug)]
struct Entry {
    /// The configured spec this address came from.
    spec: String,
    status: EndpointStatus,
    channel: GrpcChannel,
}

/// Options of an [`EndpointSet`].
#[derive(Debug, Clone)]
pub struct EndpointSetOptions {
    /// Endpoint specs: `host:port`, `dns+host:port`, `dnssrv+name` or `dnssrvnoa+name`
    /// (DNS specs are resolved on every poll); duplicates are ignored.
    pub addresses: Vec<String>,
    /// The endpoint SD config, whose endpoints are added to `addresses` (a file is
    /// re-read on every poll).
    pub sd: Option<SdSource>,
    /// Period of Info polls.
    pub info_interval: Duration,
    /// Timeout of one Info call.
    pub info_timeout: Duration,
}

impl Default for EndpointSetOptions {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            sd: None,
            info_interval: DEFAULT_INFO_INTERVAL,
            info_timeout: DEFAULT_INFO_INTERVAL,
        }
    }
}

/// The endpoints of a querier and their health.
#[derive(Debug)]
pub struct EndpointSet {
    options: EndpointSetOptions,
    /// Specs from `addresses`.
    specs: Vec<(String, Spec)>,
    /// Specs from the SD config, and the text they were parsed from.
    sd_specs: RwLock<(String, Vec<(String, Spec)>)>,
    resolver: Arc<dyn Resolver>,
    client: GrpcClient,
    entries: RwLock<BTreeMap<String, Entry>>,
    connections: IntGaugeVec,
}

impl EndpointSet {
    /// Creates the set and registers `thanos_store_nodes_grpc_connections` in `registry`.
    /// Specs are parsed and the SD config is read and parsed now (errors are returned);
    /// static addresses are listed (unhealthy) at once; nothing is polled or resolved yet.
    /// DNS lookups use the [`SystemResolver`].
    pub fn new(
        options: EndpointSetOptions,
        client: &GrpcClient,
        registry: &Registry,
    ) -> Result<Self, QueryError> {
        Self::with_resolver(options, client, registry, Arc::new(SystemResolver::new()))
    }

    /// [`EndpointSet::new`] with another DNS resolver.
    pub fn with_resolver(
        options: EndpointSetOptions,
        client: &GrpcClient,
        registry: &Registry,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, QueryError> {
        let specs = parse_specs(&options.addresses)?;
        let sd_specs = match &options.sd {
            None => (String::new(), Vec::new()),
            Some(source) => {
                let text = match source {
                    SdSource::Inline(text) => text.clone(),
                    SdSource::File(path) => {
                        std::fs::read_to_string(path).map_err(|e| QueryError::SdConfig {
                            origin: source.origin(),
                            message: e.to_string(),
                        })?
                    }
                };
                let parsed = parse_specs(&sd::parse(&text, &source.origin())?)?;
                (text, parsed)
            }
        };
        let connections = IntGaugeVec::new(
            Opts::new(
                "thanos_store_nodes_grpc_connections",
                "Number of gRPC connection to Store APIs. Opened connection means healthy store APIs available for Querier.",
            ),
            &["external_labels", "store_type"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        let set = Self {
            options,
            specs,
            sd_specs: RwLock::new(sd_specs),
            resolver,
            client: client.clone(),
            entries: RwLock::new(BTreeMap::new()),
            connections,
        };
        {
            let mut entries = set.entries.write().unwrap_or_else(|p| p.into_inner());
            for (raw, spec) in set.all_specs() {
                if let Spec::Static(address) = spec {
                    let entry = set.new_entry(&raw, &address)?;
                    entries.entry(address).or_insert(entry);
                }
            }
        }
        Ok(set)
    }

    /// Specs from the flags followed by those from the SD config, without duplicates.
    fn all_specs(&self) -> Vec<(String, Spec)> {
        let mut all = self.specs.clone();
        let sd = self.sd_specs.read().unwrap_or_else(|p| p.into_inner());
        for (raw, spec) in &sd.1 {
            if !all.iter().any(|(r, _)| r == raw) {
                all.push((raw.clone(), spec.clone()));
            }
        }
        all
    }

    /// Re-reads the SD config file; a changed, valid file replaces the SD specs. Errors
    /// are logged and keep the previous specs.
    async fn reload_sd(&self) {
        let Some(source @ SdSource::File(path)) = &self.options.sd else {
            return;
        };
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "reading endpoint sd config; keeping the previous endpoints");
                return;
            }
        };
        if self.sd_specs.read().unwrap_or_else(|p| p.into_inner()).0 == text {
            return;
        }
        match sd::parse(&text, &source.origin()).and_then(|raw| parse_specs(&raw)) {
            Ok(specs) => {
                tracing::info!(path = %path.display(), endpoints = specs.len(), "endpoint sd config reloaded");
                *self.sd_specs.write().unwrap_or_else(|p| p.into_inner()) = (text, specs);
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "invalid endpoint sd config; keeping the previous endpoints");
            }
        }
    }

    fn new_entry(&self, spec: &str, address: &str) -> Result<Entry, QueryError> {
        let channel = self
            .client
            .store_channel(address, self.options.info_timeout)
            .map_err(|source| QueryError::Endpoint {
                address: address.to_owned(),
                source,
            })?;
        Ok(Entry {
            spec: spec.to_owned(),
            status: EndpointStatus::new(address),
            channel,
        })
    }

    /// Resolves every spec and updates the entries: new addresses are added, addresses no
    /// spec yields any more are removed. A failed lookup keeps the spec's previous
    /// addresses.
    async fn resolve(&self) {
        let specs = self.all_specs();
        let mut wanted: BTreeMap<String, String> = BTreeMap::new();
        for (raw, spec) in &specs {
            let addresses = match dns::resolve(self.resolver.as_ref(), spec).await {
                Ok(addresses) => addresses,
                Err(err) => {
                    tracing::warn!(spec = %raw, error = %err, "resolving endpoint");
                    self.read()
                        .iter()
                        .filter(|(_, e)| e.spec == *raw)
                        .map(|(a, _)| a.clone())
                        .collect()
                }
            };
            for address in addresses {
                wanted.entry(address).or_insert_with(|| raw.clone());
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|address, _| {
            let keep = wanted.contains_key(address);
            if !keep {
                tracing::info!(address = %address, "endpoint removed");
            }
            keep
        });
        for (address, raw) in wanted {
            if entries.contains_key(&address) {
                continue;
            }
            match self.new_entry(&raw, &address) {
                Ok(entry) => {
                    entries.insert(address, entry);
                }
                Err(err) => tracing::warn!(spec = %raw, error = %err, "adding endpoint"),
            }
        }
    }

    /// Re-reads the SD config file, resolves every spec, then polls Info on every endpoint
    /// once (concurrently) and updates their status.
    pub async fn update(&self) {
        self.reload_sd().await;
        self.resolve().await;
        let targets: Vec<(String, GrpcChannel)> = self
            .read()
            .iter()
            .map(|(a, e)| (a.clone(), e.channel.clone()))
            .collect();
        let timeout = self.options.info_timeout;
        let results =
            futures::future::join_all(targets.into_iter().map(|(address, channel)| async move {
                let mut request = tonic::Request::new(InfoRequest {});
                request.set_timeout(timeout);
                let mut client = InfoClient::new(channel);
                let call = client.info(request);
                let result = match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(resp)) => Ok(resp.into_inner()),
                    Ok(Err(status)) => Err(format!("fetching info from {address}: {status}")),
                    Err(_) => Err(format!(
                        "fetching info from {address}: timed out after {timeout:?}"
                    )),
                };
                (address, result)
            }))
            .await;
        let now = SystemTime::now();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for (address, result) in results {
            let Some(entry) = entries.get_mut(&address) else {
                continue;
            };
            entry.status.last_check = Some(now);
            match result {
                Ok(info) => {
                    let was = entry.status.healthy;
                    entry.status.apply_info(info);
                    if !was && entry.status.healthy {
                        tracing::info!(address = %address, component = %entry.status.component_type, "endpoint healthy");
                    }
                }
                Err(err) => {
                    if entry.status.healthy {
                        tracing::warn!(address = %address, error = %err, "endpoint unhealthy");
                    }
                    entry.status.healthy = false;
                    entry.status.last_error = Some(err);
                }
            }
        }
        self.connections.reset();
        for entry in entries.values().filter(|e| e.status.healthy) {
            let labels = entry
                .status
                .label_sets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            self.connections
                .with_label_values(&[labels.as_str(), entry.status.component_type.as_str()])
                .inc();
        }
    }

    /// Polls every `info_interval` until `shutdown` is cancelled (the first poll runs at once).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.options.info_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => self.update().await,
            }
        }
    }

    /// The status of every endpoint, sorted by address.
    pub fn statuses(&self) -> Vec<EndpointStatus> {
        self.read().values().map(|e| e.status.clone()).collect()
    }

    /// Channels of the healthy endpoints serving the metric metadata API, with their
    /// addresses.
    pub fn metadata_endpoints(&self) -> Vec<(String, GrpcChannel)> {
        self.read()
            .values()
            .filter(|e| e.status.healthy && e.status.serves_metadata)
            .map(|e| (e.status.address.clone(), e.channel.clone()))
            .collect()
    }

    /// Healthy endpoints whose data can match a query over `[mint, maxt]` with `matchers`,
    /// restricted by `store_matchers` (the API's `storeMatch[]`: a store is kept when its
    /// address satisfies every `__address__` matcher of at least one set; other label
    /// names are ignored; no set keeps every store).
    pub fn stores_for(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
        store_matchers: &[Vec<Matcher>],
    ) -> Vec<StoreRef> {
        self.read()
            .values()
            .filter(|e| e.status.healthy && e.status.matches(mint, maxt, matchers))
            .filter(|e| address_selected(&e.status.address, store_matchers))
            .map(|e| StoreRef {
                status: e.status.clone(),
                client: StoreClient::new(e.channel.clone())
                    .max_decoding_message_size(thanos_server::MAX_MESSAGE_SIZE),
                channel: e.channel.clone(),
            })
            .collect()
    }

    /// Number of configured endpoints.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no endpoint is configured.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_model::MatchType;

    #[test]
    fn matches_by_time_range_and_external_labels() {
        let mut s = EndpointStatus::new("x:1");
        s.min_time = 1000;
        s.max_time = 2000;
        s.label_sets = vec![Labels::from_pairs([("replica", "a"), ("region", "eu")])];
        let name = Matcher::equal("__name__", "up");
        assert!(s.matches(0, 1000, std::slice::from_ref(&name)));
        assert!(s.matches(2000, 3000, std::slice::from_ref(&name)));
        assert!(!s.matches(2001, 3000, std::slice::from_ref(&name)));
        assert!(!s.matches(0, 999, std::slice::from_ref(&name)));
        assert!(s.matches(0, 5000, &[name.clone(), Matcher::equal("region", "eu")]));
        assert!(!s.matches(0, 5000, &[name.clone(), Matcher::equal("region", "us")]));
        let re = Matcher::new(MatchType::RegexMatch, "region", "e.*").unwrap();
        assert!(s.matches(0, 5000, &[re]));
        s.label_sets.clear();
        assert!(s.matches(0, 5000, &[Matcher::equal("region", "us")]));
    }

    #[test]
    fn store_match_filters_by_address() {
        let re = |v: &str| Matcher::new(MatchType::RegexMatch, ADDRESS_LABEL, v).unwrap();
        assert!(address_selected("a:1", &[]));
        assert!(address_selected("a:1", &[vec![re("a:.*")]]));
        assert!(!address_selected("b:1", &[vec![re("a:.*")]]));
        assert!(address_selected(
            "b:1",
            &[vec![re("a:.*")], vec![re("b:1")]]
        ));
        assert!(address_selected("b:1", &[vec![Matcher::equal("job", "x")]]));
    }

    fn client() -> GrpcClient {
        thanos_server::GrpcClientOptions { tls: None }
            .build()
            .unwrap()
    }

    fn addresses(set: &EndpointSet) -> Vec<String> {
        set.statuses().into_iter().map(|s| s.address).collect()
    }

    #[tokio::test]
    async fn dns_specs_follow_the_resolver() {
        let resolver = Arc::new(crate::dns::tests::fake());
        let set = EndpointSet::with_resolver(
            EndpointSetOptions {
                addresses: vec![
                    "127.0.0.1:1".into(),
                    "dnssrv+_grpc._tcp.store".into(),
                    "dnssrvnoa+_grpc._tcp.store".into(),
                    "127.0.0.1:1".into(),
                ],
                ..EndpointSetOptions::default()
            },
            &client(),
            &Registry::new(),
            resolver.clone(),
        )
        .unwrap();
        assert_eq!(addresses(&set), ["127.0.0.1:1"], "static listed at once");
        set.resolve().await;
        assert_eq!(
            addresses(&set),
            [
                "127.0.0.11:10901",
                "127.0.0.12:10902",
                "127.0.0.1:1",
                "[::1]:10902",
                "store-0.svc:10901",
                "store-1.svc:10902",
            ]
        );
        // Records change: the next refresh follows them.
        resolver
            .srv
            .lock()
            .unwrap()
            .insert("_grpc._tcp.store".into(), vec![("multi.".into(), 10903)]);
        set.resolve().await;
        assert_eq!(
            addresses(&set),
            [
                "127.0.0.13:10903",
                "127.0.0.14:10903",
                "127.0.0.1:1",
                "multi:10903",
            ]
        );
        // A failed lookup keeps what the spec resolved to before.
        resolver.srv.lock().unwrap().clear();
        set.resolve().await;
        assert_eq!(addresses(&set).len(), 4);
    }

    #[tokio::test]
    async fn sd_file_is_reloaded_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sd.yaml");
        std::fs::write(&path, "endpoints:\n  - address: 127.0.0.1:1\n").unwrap();
        let set = EndpointSet::with_resolver(
            EndpointSetOptions {
                addresses: vec!["127.0.0.1:9".into()],
                sd: Some(SdSource::File(path.clone())),
                ..EndpointSetOptions::default()
            },
            &client(),
            &Registry::new(),
            Arc::new(crate::dns::tests::fake()),
        )
        .unwrap();
        assert_eq!(addresses(&set), ["127.0.0.1:1", "127.0.0.1:9"]);
        let refresh = || async {
            set.reload_sd().await;
            set.resolve().await;
        };
        std::fs::write(
            &path,
            "endpoints:\n  - address: 127.0.0.1:2\n  - address: dns+multi:5\n",
        )
        .unwrap();
        refresh().await;
        assert_eq!(
            addresses(&set),
            ["127.0.0.13:5", "127.0.0.14:5", "127.0.0.1:2", "127.0.0.1:9"]
        );
        // Invalid or missing files keep the previous endpoints.
        std::fs::write(&path, "endpoints: [{adress: x}]").unwrap();
        refresh().await;
        assert_eq!(addresses(&set).len(), 4);
        std::fs::remove_file(&path).unwrap();
        refresh().await;
        assert_eq!(addresses(&set).len(), 4);
        std::fs::write(&path, "endpoints: []\n").unwrap();
        refresh().await;
        assert_eq!(addresses(&set), ["127.0.0.1:9"]);
    }

    #[tokio::test]
    async fn invalid_sd_config_fails_at_start() {
        let build = |sd| {
            EndpointSet::new(
                EndpointSetOptions {
                    sd: Some(sd),
                    ..EndpointSetOptions::default()
                },
                &client(),
                &Registry::new(),
            )
        };
        let err = build(SdSource::Inline(
            "endpoints: [{address: a:1, group: true}]".into(),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("--endpoint.sd-config"), "{err}");
        let err = build(SdSource::File("/nonexistent/sd.yaml".into())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sd.yaml"), "{err}");
        let set = build(SdSource::Inline(
            "endpoints: [{address: \"127.0.0.1:3\"}]".into(),
        ))
        .unwrap();
        assert_eq!(addresses(&set), ["127.0.0.1:3"]);
    }
}
