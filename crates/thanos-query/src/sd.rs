//! The endpoint SD config (`--endpoint.sd-config` / `--endpoint.sd-config-file`,
//! components.md §5.2).
//!
//! ```yaml
//! default_client_config: { ... }   # accepted when it sets no TLS
//! endpoints:
//!   - address: store-0:10901       # any endpoint spec: host:port, dns+, dnssrv+, dnssrvnoa+
//!     strict: false                # accepted; strict endpoints are treated as plain ones
//!     group: false                 # groups are rejected
//! ```
//!
//! A file is re-read on every endpoint refresh; when its content changed the new endpoint
//! list replaces the old one (endpoints are added and removed without a restart). A file
//! that became unreadable or invalid is logged and the previous list is kept.
//! Per-endpoint TLS (`tls_config`, `server_name`) is rejected: every endpoint uses the
//! `--grpc-client-*` settings.

use std::path::PathBuf;

use serde::Deserialize;

use crate::dns::Spec;
use crate::error::QueryError;

/// Where the endpoint SD config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdSource {
    /// `--endpoint.sd-config-file`: re-read on every refresh.
    File(PathBuf),
    /// `--endpoint.sd-config`: fixed YAML text.
    Inline(String),
}

impl SdSource {
    /// How errors name the source.
    pub fn origin(&self) -> String {
        match self {
            SdSource::File(path) => path.display().to_string(),
            SdSource::Inline(_) => "--endpoint.sd-config".to_owned(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SdFile {
    #[serde(default)]
    default_client_config: Option<ClientConfig>,
    #[serde(default)]
    endpoints: Vec<SdEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SdEndpoint {
    address: String,
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    group: bool,
    #[serde(default)]
    service_config: Option<String>,
    #[serde(default)]
    client_config: Option<ClientConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientConfig {
    #[serde(default)]
    tls_config: Option<TlsConfig>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    compression: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
}

impl ClientConfig {
    /// Why this config cannot be honoured, if it sets per-endpoint TLS.
    fn check(&self) -> Result<(), String> {
        let tls = self.tls_config.as_ref().is_some_and(|t| {
            t.enabled
                || t.insecure_skip_verify
                || [&t.cert_file, &t.key_file, &t.ca_file, &t.min_version]
                    .iter()
                    .any(|f| f.as_deref().is_some_and(|v| !v.is_empty()))
        });
        if tls || self.server_name.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(
                "per-endpoint TLS client config is not supported; use the --grpc-client-tls-* flags"
                    .to_owned(),
            );
        }
        if let Some(compression) = self.compression.as_deref().filter(|c| *c != "none") {
            tracing::warn!(
                compression,
                "endpoint sd config: client compression is not implemented; ignored"
            );
        }
        Ok(())
    }
}

/// Parses the YAML into endpoint specs (in file order, duplicates removed). An empty
/// document means no endpoints.
pub fn parse(text: &str, origin: &str) -> Result<Vec<String>, QueryError> {
    let err = |message: String| QueryError::SdConfig {
        origin: origin.to_owned(),
        message,
    };
    let file: SdFile = if text.trim().is_empty() {
        SdFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| err(e.to_string()))?
    };
    if let Some(default) = &file.default_client_config {
        default.check().map_err(err)?;
    }
    let mut specs: Vec<String> = Vec::new();
    for endpoint in file.endpoints {
        let address = endpoint.address.trim().to_owned();
        if endpoint.group {
            return Err(err(format!(
                "endpoint {address}: endpoint groups are not supported"
            )));
        }
        if let Some(client) = &endpoint.client_config {
            client
                .check()
                .map_err(|m| err(format!("endpoint {address}: {m}")))?;
        }
        if endpoint.strict {
            tracing::warn!(address = %address, "endpoint sd config: strict endpoints are treated as plain endpoints");
        }
        if endpoint
            .service_config
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            tracing::warn!(address = %address, "endpoint sd config: service_config is ignored");
        }
        Spec::parse(&address).map_err(|e| err(e.to_string()))?;
        if !specs.contains(&address) {
            specs.push(address);
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_lists() {
        let text = "endpoints:\n  - address: a:1\n  - address: dnssrv+_grpc._tcp.store\n    strict: true\n  - address: a:1\n";
        assert_eq!(
            parse(text, "f").unwrap(),
            ["a:1", "dnssrv+_grpc._tcp.store"]
        );
        assert!(parse("", "f").unwrap().is_empty());
        assert!(parse("endpoints: []", "f").unwrap().is_empty());
        let with_clients = "default_client_config:\n  compression: none\nendpoints:\n  - address: b:2\n    client_config:\n      tls_config:\n        enabled: false\n";
        assert_eq!(parse(with_clients, "f").unwrap(), ["b:2"]);
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        for (text, needle) in [
            ("endpoints:\n  - address: a:1\n    group: true\n", "groups"),
            (
                "endpoints:\n  - address: a:1\n    client_config:\n      tls_config:\n        ca_file: /ca.pem\n",
                "TLS",
            ),
            (
                "default_client_config:\n  tls_config:\n    enabled: true\n",
                "TLS",
            ),
            ("endpoints:\n  - address: dns+nohost\n", "dns+"),
            ("endpoints:\n  - adress: a:1\n", "adress"),
            ("- targets: [a:1]\n", "f.yaml"),
        ] {
            let err = parse(text, "f.yaml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("f.yaml"), "{err}");
        }
    }
}
