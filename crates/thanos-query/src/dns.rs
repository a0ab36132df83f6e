//! Endpoint specs and their DNS resolution (Thanos `pkg/discovery/dns`).
//!
//! A spec is `host:port` (used as is), `dns+host:port` (every A/AAAA record of `host`
//! with `port`), `dnssrv+name` (SRV records of `name`, each target resolved to its A/AAAA
//! records, with the record's port) or `dnssrvnoa+name` (SRV records, targets used as
//! host names without an address lookup). A port given on an SRV spec
//! (`dnssrv+name:port`) overrides the records' ports. Lookups go through a [`Resolver`]
//! so the logic can be tested without a DNS server; [`SystemResolver`] uses the system
//! configuration (`/etc/resolv.conf` for SRV, the libc resolver for addresses, so
//! `/etc/hosts` names such as `localhost` work).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use tokio::sync::OnceCell;

use crate::error::QueryError;

/// How a configured endpoint spec is turned into addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `host:port`, used as is.
    Static(String),
    /// `dns+host:port`: every A/AAAA record of `host`, with `port`.
    Dns(String),
    /// `dnssrv+name[:port]`: SRV targets resolved to addresses.
    DnsSrv(String),
    /// `dnssrvnoa+name[:port]`: SRV targets used as host names.
    DnsSrvNoA(String),
}

impl Spec {
    /// Parses a spec; fails on an empty name.
    pub fn parse(spec: &str) -> Result<Self, QueryError> {
        let invalid = |reason: &str| QueryError::InvalidSpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (build, rest): (fn(String) -> Spec, &str) =
            if let Some(rest) = spec.strip_prefix("dnssrvnoa+") {
                (Spec::DnsSrvNoA, rest)
            } else if let Some(rest) = spec.strip_prefix("dnssrv+") {
                (Spec::DnsSrv, rest)
            } else if let Some(rest) = spec.strip_prefix("dns+") {
                (Spec::Dns, rest)
            } else {
                (Spec::Static, spec)
            };
        if rest.trim().is_empty() {
            return Err(invalid("empty address"));
        }
        let parsed = build(rest.to_owned());
        if let Spec::Dns(target) = &parsed {
            match split_host_port(target) {
                Some((host, Some(_))) if !host.is_empty() => {}
                _ => return Err(invalid("dns+ needs host:port")),
            }
        }
        Ok(parsed)
    }

    /// Whether the spec needs a DNS lookup.
    pub fn is_dynamic(&self) -> bool {
        !matches!(self, Spec::Static(_))
    }
}

/// Splits `host[:port]` (IPv6 hosts in brackets); `None` when the port is not a number.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((s, None)),
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((s, None)),
    }
}

/// Formats `host:port`, bracketing IPv6 literals.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// DNS lookups used to resolve endpoint specs.
#[async_trait]
pub trait Resolver: Send + Sync + fmt::Debug {
    /// The A/AAAA addresses of `host`.
    async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, QueryError>;
    /// The SRV records of `name` as (target host, port).
    async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>, QueryError>;
}

/// The system resolver: libc for addresses, hickory with `/etc/resolv.conf` for SRV.
#[derive(Default)]
pub struct SystemResolver {
    srv: OnceCell<TokioResolver>,
}

impl fmt::Debug for SystemResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemResolver").finish_non_exhaustive()
    }
}

impl SystemResolver {
    /// A resolver; the SRV client reads the system configuration on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

fn dns_error(name: &str, message: impl fmt::Display) -> QueryError {
    QueryError::Dns {
        name: name.to_owned(),
        message: message.to_string(),
    }
}

#[async_trait]
impl Resolver for SystemResolver {
    async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, QueryError> {
        let addrs = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| dns_error(host, e))?;
        Ok(addrs.map(|a| a.ip()).collect())
    }

    async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>, QueryError> {
        let resolver = self
            .srv
            .get_or_try_init(|| async {
                TokioResolver::builder_tokio()
                    .and_then(|b| b.build())
                    .map_err(|e| dns_error(name, format!("reading the system DNS config: {e}")))
            })
            .await?;
        let lookup = resolver
            .srv_lookup(name)
            .await
            .map_err(|e| dns_error(name, e))?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some((srv.target.to_utf8(), srv.port)),
                _ => None,
            })
            .collect())
    }
}

/// Resolves a spec into sorted, de-duplicated `host:port` addresses.
pub async fn resolve(resolver: &dyn Resolver, spec: &Spec) -> Result<Vec<String>, QueryError> {
    let mut out = match spec {
        Spec::Static(address) => vec![address.clone()],
        Spec::Dns(target) => {
            let Some((host, Some(port))) = split_host_port(target) else {
                return Err(dns_error(target, "missing port"));
            };
            addresses(resolver, host, port).await?
        }
        Spec::DnsSrv(name) | Spec::DnsSrvNoA(name) => {
            let (host, port) = split_host_port(name).ok_or_else(|| dns_error(name, "bad port"))?;
            let mut out = Vec::new();
            for (target, record_port) in resolver.lookup_srv(host).await? {
                let port = port.unwrap_or(record_port);
                let target = target.trim_end_matches('.');
                if matches!(spec, Spec::DnsSrvNoA(_)) {
                    out.push(join_host_port(target, port));
                } else {
                    out.extend(addresses(resolver, target, port).await?);
                }
            }
            out
        }
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// `host` (an IP literal or a name to look up) with `port`.
async fn addresses(
    resolver: &dyn Resolver,
    host: &str,
    port: u16,
) -> Result<Vec<String>, QueryError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port).to_string()]);
    }
    Ok(resolver
        .lookup_ip(host)
        .await?
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port).to_string())
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A resolver answering from tables; names not listed fail.
    #[derive(Debug, Default)]
    pub(crate) struct FakeResolver {
        pub(crate) ips: Mutex<BTreeMap<String, Vec<IpAddr>>>,
        pub(crate) srv: Mutex<BTreeMap<String, Vec<(String, u16)>>>,
    }

    #[async_trait]
    impl Resolver for FakeResolver {
        async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>, QueryError> {
            let ips = self.ips.lock().unwrap_or_else(|p| p.into_inner());
            ips.get(host)
                .cloned()
                .ok_or_else(|| dns_error(host, "no such host"))
        }

        async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>, QueryError> {
            let srv = self.srv.lock().unwrap_or_else(|p| p.into_inner());
            srv.get(name)
                .cloned()
                .ok_or_else(|| dns_error(name, "no such host"))
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub(crate) fn fake() -> FakeResolver {
        let r = FakeResolver::default();
        r.ips.lock().unwrap().extend([
            ("store-0.svc".to_owned(), vec![ip("127.0.0.11")]),
            ("store-1.svc".to_owned(), vec![ip("127.0.0.12"), ip("::1")]),
            ("multi".to_owned(), vec![ip("127.0.0.13"), ip("127.0.0.14")]),
        ]);
        r.srv.lock().unwrap().insert(
            "_grpc._tcp.store".to_owned(),
            vec![
                ("store-0.svc.".to_owned(), 10901),
                ("store-1.svc.".to_owned(), 10902),
            ],
        );
        r
    }

    #[test]
    fn parses_specs() {
        assert_eq!(Spec::parse("a:1").unwrap(), Spec::Static("a:1".into()));
        assert_eq!(Spec::parse("dns+a:1").unwrap(), Spec::Dns("a:1".into()));
        assert_eq!(
            Spec::parse("dnssrv+_grpc._tcp.a").unwrap(),
            Spec::DnsSrv("_grpc._tcp.a".into())
        );
        assert_eq!(
            Spec::parse("dnssrvnoa+_grpc._tcp.a").unwrap(),
            Spec::DnsSrvNoA("_grpc._tcp.a".into())
        );
        for bad in ["dns+a", "dns+", "dnssrv+", "dns+a:x", ""] {
            let err = Spec::parse(bad).unwrap_err();
            assert!(err.to_string().contains("invalid endpoint"), "{bad}: {err}");
        }
        assert!(!Spec::parse("a:1").unwrap().is_dynamic());
        assert!(Spec::parse("dnssrv+x").unwrap().is_dynamic());
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("a:1"), Some(("a", Some(1))));
        assert_eq!(split_host_port("a"), Some(("a", None)));
        assert_eq!(split_host_port("[::1]:9"), Some(("::1", Some(9))));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port("a:b"), None);
        assert_eq!(join_host_port("::1", 9), "[::1]:9");
    }

    #[tokio::test]
    async fn resolves_every_kind_of_spec() {
        let r = fake();
        let go = |s: &str| {
            let spec = Spec::parse(s).unwrap();
            let r = &r;
            async move { resolve(r, &spec).await }
        };
        assert_eq!(go("a:1").await.unwrap(), ["a:1"]);
        assert_eq!(
            go("dns+multi:10901").await.unwrap(),
            ["127.0.0.13:10901", "127.0.0.14:10901"]
        );
        assert_eq!(go("dns+127.0.0.1:5").await.unwrap(), ["127.0.0.1:5"]);
        assert_eq!(
            go("dnssrv+_grpc._tcp.store").await.unwrap(),
            ["127.0.0.11:10901", "127.0.0.12:10902", "[::1]:10902"]
        );
        // An explicit port overrides the SRV records' ports.
        assert_eq!(
            go("dnssrv+_grpc._tcp.store:7").await.unwrap(),
            ["127.0.0.11:7", "127.0.0.12:7", "[::1]:7"]
        );
        assert_eq!(
            go("dnssrvnoa+_grpc._tcp.store").await.unwrap(),
            ["store-0.svc:10901", "store-1.svc:10902"]
        );
        let err = go("dnssrv+_missing._tcp").await.unwrap_err();
        assert!(err.to_string().contains("_missing._tcp"), "{err}");
        assert!(go("dns+nowhere:1").await.is_err());
    }

    #[tokio::test]
    async fn system_resolver_resolves_localhost() {
        let addrs = resolve(
            &SystemResolver::new(),
            &Spec::parse("dns+localhost:9").unwrap(),
        )
        .await
        .unwrap();
        assert!(
            addrs.iter().any(|a| a == "127.0.0.1:9" || a == "[::1]:9"),
            "{addrs:?}"
        );
    }
}
