//! `thanos query`: the querier process (components.md §5).
//!
//! Maps the flags onto [`QuerierOptions`], serves the Prometheus HTTP API and the web UI
//! under the route prefix (probes and `/metrics` at the root; `/` redirects to the UI),
//! Store (proxy), Info and health over gRPC, polls the endpoints (re-resolving DNS specs
//! and re-reading `--endpoint.sd-config-file` on every refresh), and shuts down in order
//! on SIGTERM/SIGINT. Like Thanos, the querier is ready as soon as its servers are
//! listening.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use prometheus::Registry;
use thanos_query::sd::SdSource;
use thanos_query::{DedupFunc, Querier, QuerierOptions, QueryLimits};
use thanos_server::{GrpcServer, HttpServer, Prober, RunGroup, shutdown_signal};

use crate::flags::objstore::read_pair;
use crate::flags::query::QueryFlags;

/// `--enable-feature` values that change the PromQL engine.
const FEATURE_EXPERIMENTAL_FUNCTIONS: &str = "promql-experimental-functions";
const FEATURE_DELAYED_NAME_REMOVAL: &str = "promql-delayed-name-removal";

/// Runs `thanos query` until SIGTERM/SIGINT (or a fatal error).
pub fn run(flags: &QueryFlags) -> anyhow::Result<()> {
    let http = flags.http.options("http")?;
    let grpc = flags.grpc.options()?;
    let options = querier_options(flags)?;
    let prefixes = Prefixes {
        route: route_prefix(&flags.web_route_prefix, &flags.web_external_prefix),
        link: link_prefix(&flags.web_route_prefix, &flags.web_external_prefix),
    };
    let runtime = crate::runtime::half_core_runtime()?;
    runtime.block_on(serve(options, prefixes, http, grpc))
}

/// Maps the flags onto [`QuerierOptions`]; fails on flags whose silent omission would
/// change results, warns about the other accepted-but-ignored flags.
pub fn querier_options(flags: &QueryFlags) -> anyhow::Result<QuerierOptions> {
    check_unsupported(flags)?;
    warn_ignored(flags);
    let mut endpoints = flags.endpoint.clone();
    if !flags.endpoint_strict.is_empty() {
        tracing::warn!(
            flag = "--endpoint-strict",
            "strict endpoints are treated as plain --endpoint entries"
        );
        endpoints.extend(flags.endpoint_strict.iter().cloned());
    }
    let endpoint_sd = sd_source(flags);
    let dedup_func: DedupFunc = flags
        .deduplication_func
        .parse()
        .map_err(|err: String| anyhow::anyhow!("invalid --deduplication.func: {err}"))?;
    let features: Vec<&str> = flags
        .enable_feature
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .collect();
    for feature in &features {
        if *feature != FEATURE_EXPERIMENTAL_FUNCTIONS && *feature != FEATURE_DELAYED_NAME_REMOVAL {
            tracing::warn!(
                flag = "--enable-feature",
                feature,
                "unknown or unsupported feature; ignored"
            );
        }
    }
    let defaults = QuerierOptions::default();
    let mut engine = defaults.engine.clone();
    if let Some(lookback) = flags.query_lookback_delta.filter(|d| !d.is_zero()) {
        engine.lookback_delta_ms = millis(lookback);
    }
    engine.default_subquery_step_ms = millis(flags.query_default_evaluation_interval).max(1);
    engine.enable_experimental_functions =
        flags.query_enable_x_functions || features.contains(&FEATURE_EXPERIMENTAL_FUNCTIONS);
    engine.delayed_name_removal = features.contains(&FEATURE_DELAYED_NAME_REMOVAL);
    Ok(QuerierOptions {
        endpoints,
        endpoint_sd,
        replica_labels: flags
            .query_replica_label
            .iter()
            .filter(|label| !label.is_empty())
            .cloned()
            .collect(),
        dedup_func,
        partial_response: flags.query_partial_response,
        query_timeout: flags.query_timeout,
        response_timeout: (!flags.store_response_timeout.is_zero())
            .then_some(flags.store_response_timeout),
        max_concurrent: usize::try_from(flags.query_max_concurrent)
            .unwrap_or(usize::MAX)
            .max(1),
        info_interval: if flags.endpoint_info_timeout.is_zero() {
            defaults.info_interval
        } else {
            flags.endpoint_info_timeout
        },
        engine,
        client: flags.client.options()?,
        limits: QueryLimits {
            max_series: usize::try_from(flags.limits.request_series).unwrap_or(usize::MAX),
            ..defaults.limits
        },
        build_info: defaults.build_info,
    })
}

/// `--endpoint.sd-config-file` (re-read on every endpoint refresh) or the inline
/// `--endpoint.sd-config`; empty values count as unset.
fn sd_source(flags: &QueryFlags) -> Option<SdSource> {
    if let Some(path) = flags
        .endpoint_sd_config_file
        .as_ref()
        .filter(|path| !path.as_os_str().is_empty())
    {
        return Some(SdSource::File(path.clone()));
    }
    flags
        .endpoint_sd_config
        .as_ref()
        .filter(|text| !text.trim().is_empty())
        .map(|text| SdSource::Inline(text.clone()))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The path the API is served under: `--web.route-prefix`, or else the path of
/// `--web.external-prefix` (as Thanos does); `""` for the root.
pub fn route_prefix(route_prefix: &str, external_prefix: &str) -> String {
    let raw = if route_prefix.is_empty() {
        // The external prefix may be a full URL: keep its path.
        match external_prefix.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
            None => external_prefix,
        }
    } else {
        route_prefix
    };
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The path the UI's links and API calls start with: the path of
/// `--web.external-prefix` when set (a proxy may rewrite paths), else the route prefix.
pub fn link_prefix(route_prefix_flag: &str, external_prefix: &str) -> String {
    if external_prefix.is_empty() {
        route_prefix(route_prefix_flag, "")
    } else {
        route_prefix("", external_prefix)
    }
}

/// Where the HTTP routes are served and where the browser reaches them.
#[derive(Debug, Clone)]
struct Prefixes {
    /// `--web.route-prefix` (or the external prefix's path).
    route: String,
    /// What UI links start with.
    link: String,
}

/// Flags whose omission would change results or hide data: rejected.
fn check_unsupported(flags: &QueryFlags) -> anyhow::Result<()> {
    if !flags.store_sd_files.is_empty() {
        bail!(
            "--store.sd-files is not supported: its endpoints would not be queried; \
             list them with --endpoint"
        );
    }
    if !flags.endpoint_group.is_empty() || !flags.endpoint_group_strict.is_empty() {
        bail!("--endpoint-group and --endpoint-group-strict are not supported");
    }
    let relabel = read_pair(
        "selector.relabel-config",
        flags.selector_relabel_config_file.as_deref(),
        flags.selector_relabel_config.as_deref(),
    )?;
    if relabel.is_some_and(|text| !text.trim().is_empty()) {
        bail!(
            "--selector.relabel-config(-file) is not supported: stores meant to be excluded \
             would be queried"
        );
    }
    if flags.query_enforce_tenancy {
        bail!("--query.enforce-tenancy is not supported: queries would not be scoped to a tenant");
    }
    thanos_server::parse_labels(&flags.selector_label).context("invalid --selector-label")?;
    Ok(())
}

/// Accepted flags that are not implemented and do not change query results: warned about
/// when set to a non-default value.
fn warn_ignored(flags: &QueryFlags) {
    let ignored = [
        ("--selector-label", !flags.selector_label.is_empty()),
        (
            "--query.partition-label",
            !flags.query_partition_label.is_empty(),
        ),
        ("--query.auto-downsampling", flags.query_auto_downsampling),
        ("--query.mode", flags.query_mode != "local"),
        (
            "--query.promql-engine",
            flags.query_promql_engine != "prometheus",
        ),
        (
            "--query.max-concurrent-select",
            flags.query_max_concurrent_select != 4,
        ),
        (
            "--query.metadata.default-time-range",
            !flags.query_metadata_default_time_range.is_zero(),
        ),
        (
            "--query.active-query-path",
            !flags.query_active_query_path.is_empty(),
        ),
        (
            "--store.limits.request-samples",
            flags.limits.request_samples > 0,
        ),
        ("--grpc-compression", flags.client.compression != "none"),
        ("--web.prefix-header", !flags.web_prefix_header.is_empty()),
        ("--web.disable-cors", flags.web_disable_cors),
        ("--alert.query-url", flags.alert_query_url.is_some()),
        (
            "--query.tenant-certificate-field",
            !flags.query_tenant_certificate_field.is_empty(),
        ),
        (
            "--grpc.proxy-strategy",
            flags.grpc_proxy_strategy != "eager",
        ),
    ];
    for (flag, set) in ignored {
        if set {
            tracing::warn!(flag, "accepted but not implemented; ignored");
        }
    }
    let request_logging = flags
        .request_logging_config_file
        .as_ref()
        .is_some_and(|path| !path.as_os_str().is_empty())
        || flags
            .request_logging_config
            .as_ref()
            .is_some_and(|text| !text.is_empty());
    if request_logging {
        tracing::warn!(
            flag = "--request.logging-config",
            "accepted but not implemented; ignored"
        );
    }
}

async fn serve(
    options: QuerierOptions,
    prefixes: Prefixes,
    http: thanos_server::HttpServerOptions,
    grpc: thanos_server::GrpcServerOptions,
) -> anyhow::Result<()> {
    let registry = Registry::new();
    let prober = Prober::new("query", &registry).context("register probe metrics")?;
    tracing::info!(
        endpoints = ?options.endpoints,
        replica_labels = ?options.replica_labels,
        endpoint_sd = ?options.endpoint_sd,
        route_prefix = %prefixes.route,
        "starting querier"
    );
    let querier = Arc::new(Querier::new(options, &registry).context("create the querier")?);
    let api = thanos_query::ui::nest_under(
        &prefixes.route,
        &prefixes.link,
        querier.router_with_ui(&prefixes.link),
    );
    let http_server = HttpServer::bind(http, prober.clone(), registry.clone(), api)
        .await
        .context("start the HTTP server")?;
    let grpc_server = GrpcServer::bind(grpc, prober.clone())
        .await
        .context("start the gRPC server")?
        .add_service(querier.store_service())
        .add_service(querier.info_service());

    let mut group = RunGroup::new(prober.clone());
    let token = group.token();
    group.spawn("http", http_server.run(token.clone()));
    group.spawn("grpc", grpc_server.run(token.clone()));
    let discovery = querier.clone();
    let discovery_token = token.clone();
    group.spawn("endpoint-discovery", async move {
        discovery.endpoints().update().await;
        discovery.run_discovery(discovery_token).await;
        Ok::<_, thanos_server::BoxError>(())
    });
    prober.healthy();
    prober.ready();
    group
        .run(async {
            if let Err(err) = shutdown_signal().await {
                tracing::error!(err = %err, "cannot listen for signals");
            }
        })
        .await
        .context("querier")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    fn flags(args: &[&str]) -> QueryFlags {
        let mut all = vec!["thanos", "query"];
        all.extend(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Query(flags) => *flags,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_map_onto_options() {
        let options = querier_options(&flags(&[
            "--endpoint=a:1",
            "--store=b:2",
            "--endpoint=dns+c:3",
            "--query.replica-label=replica,rule_replica",
            "--deduplication.func=chain",
            "--query.partial-response=false",
            "--query.timeout=30s",
            "--store.response-timeout=5s",
            "--query.max-concurrent=3",
            "--query.lookback-delta=10m",
            "--store.limits.request-series=100",
            "--enable-feature=promql-experimental-functions",
        ]))
        .unwrap();
        assert_eq!(options.endpoints, ["a:1", "b:2", "dns+c:3"]);
        assert_eq!(options.replica_labels, ["replica", "rule_replica"]);
        assert_eq!(options.dedup_func, DedupFunc::Chain);
        assert!(!options.partial_response);
        assert_eq!(options.query_timeout, Duration::from_secs(30));
        assert_eq!(options.response_timeout, Some(Duration::from_secs(5)));
        assert_eq!(options.max_concurrent, 3);
        assert_eq!(options.engine.lookback_delta_ms, 600_000);
        assert!(options.engine.enable_experimental_functions);
        assert_eq!(options.limits.max_series, 100);
        assert!(options.client.tls.is_none());

        let defaults = querier_options(&flags(&[])).unwrap();
        assert_eq!(defaults.dedup_func, DedupFunc::Penalty);
        assert!(defaults.partial_response);
        assert_eq!(defaults.response_timeout, None);
        assert_eq!(defaults.engine.lookback_delta_ms, 300_000);
        assert_eq!(defaults.query_timeout, Duration::from_secs(120));
    }

    #[test]
    fn dns_and_sd_config_are_accepted() {
        let options = querier_options(&flags(&[
            "--endpoint=dnssrv+_grpc._tcp.store",
            "--endpoint=dnssrvnoa+_grpc._tcp.store",
            "--endpoint.sd-config=endpoints: [{address: a:1}]",
        ]))
        .unwrap();
        assert_eq!(
            options.endpoints,
            ["dnssrv+_grpc._tcp.store", "dnssrvnoa+_grpc._tcp.store"]
        );
        assert_eq!(
            options.endpoint_sd,
            Some(SdSource::Inline("endpoints: [{address: a:1}]".into()))
        );
        let options = querier_options(&flags(&["--endpoint.sd-config-file=/etc/sd.yaml"])).unwrap();
        assert_eq!(
            options.endpoint_sd,
            Some(SdSource::File("/etc/sd.yaml".into()))
        );
        assert_eq!(querier_options(&flags(&[])).unwrap().endpoint_sd, None);
    }

    #[test]
    fn unsupported_discovery_is_rejected() {
        for args in [
            &["--store.sd-files=/tmp/sd.json"][..],
            &["--query.enforce-tenancy"][..],
        ] {
            let err = querier_options(&flags(args)).unwrap_err();
            let flag = args[0].split('=').next().unwrap_or_default();
            assert!(err.to_string().contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn route_prefix_follows_thanos() {
        assert_eq!(route_prefix("", ""), "");
        assert_eq!(route_prefix("/", ""), "");
        assert_eq!(route_prefix("thanos/", ""), "/thanos");
        assert_eq!(route_prefix("", "http://proxy:9090/q/"), "/q");
        assert_eq!(route_prefix("", "/ext"), "/ext");
        assert_eq!(route_prefix("/r", "/ext"), "/r");
    }

    #[test]
    fn links_use_the_external_prefix() {
        assert_eq!(link_prefix("", ""), "");
        assert_eq!(link_prefix("/r/", ""), "/r");
        assert_eq!(link_prefix("/r", "http://proxy:9090/ext/"), "/ext");
        assert_eq!(link_prefix("", "/ext"), "/ext");
    }
}
