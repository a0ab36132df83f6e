//! Thanos objstore YAML (`--objstore.config-file` / `--objstore.config`): parsing and validation.
//!
//! The document has the top-level keys `type`, `config`, `prefix` and (store gateway)
//! `hedging_config`. It is parsed in two passes: the first reads only `type`, the second reads
//! the whole document with `config` typed as the provider's struct; both the document and every
//! provider struct reject unknown keys, like Thanos's strict YAML unmarshalling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::bucket::RetryPolicy;
use crate::error::{Error, Result};

/// Thanos provider types that have no `object_store` backend here.
const UNSUPPORTED_TYPES: &[&str] = &["SWIFT", "COS", "ALIYUNOSS", "BOS", "OCI", "OBS"];

/// Minimum size of a non-final S3 multipart part.
pub(crate) const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Thanos's default S3 `part_size` (64 MiB).
pub(crate) const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;

/// Object storage provider selected by the `type` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// `FILESYSTEM`: a local directory (testing and demos).
    Filesystem,
    /// `S3` and S3-compatible stores.
    S3,
    /// `GCS`: Google Cloud Storage.
    Gcs,
    /// `AZURE`: Azure Blob Storage.
    Azure,
}

impl ProviderKind {
    /// Canonical (upper-case) `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Filesystem => "FILESYSTEM",
            ProviderKind::S3 => "S3",
            ProviderKind::Gcs => "GCS",
            ProviderKind::Azure => "AZURE",
        }
    }

    fn from_type(kind: &str) -> Result<Self> {
        let upper = kind.trim().to_ascii_uppercase();
        match upper.as_str() {
            "" => Err(Error::MissingType),
            "FILESYSTEM" => Ok(ProviderKind::Filesystem),
            "S3" => Ok(ProviderKind::S3),
            "GCS" => Ok(ProviderKind::Gcs),
            "AZURE" => Ok(ProviderKind::Azure),
            other if UNSUPPORTED_TYPES.contains(&other) => Err(Error::UnsupportedType {
                kind: kind.to_owned(),
            }),
            _ => Err(Error::UnknownType {
                kind: kind.to_owned(),
            }),
        }
    }
}

/// Store gateway's optional top-level `hedging_config` block. It is parsed and validated;
/// hedged requests themselves are not issued by this crate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HedgingConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `up_to`: maximum number of hedged requests per request (default 3).
    pub up_to: u32,
    /// `quantile`: latency quantile after which a hedged request is sent (default 0.9).
    pub quantile: f64,
}

impl Default for HedgingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            up_to: 3,
            quantile: 0.9,
        }
    }
}

/// A parsed and validated objstore configuration.
#[derive(Debug, Clone)]
pub struct BucketConfig {
    pub(crate) provider: ProviderConfig,
    pub(crate) prefix: String,
    hedging: Option<HedgingConfig>,
    pub(crate) retry: RetryPolicy,
}

/// Provider-specific configuration.
#[derive(Debug, Clone)]
pub(crate) enum ProviderConfig {
    Filesystem(FilesystemConfig),
    S3(Box<S3Config>),
    Gcs(Box<GcsConfig>),
    Azure(Box<AzureConfig>),
}

impl BucketConfig {
    /// Parses an objstore YAML document (only the first document of a multi-document stream is
    /// used). `$(VAR)` references are replaced by the environment variable's value first; a
    /// reference to an unset variable is an error. Empty content gives [`Error::NotConfigured`].
    pub fn parse(yaml: &str) -> Result<BucketConfig> {
        let expanded = expand_env(yaml, |name| std::env::var(name).ok())?;
        parse_expanded(&expanded)
    }

    /// Resolves the mutually exclusive `--objstore.config-file` / `--objstore.config` pair and
    /// parses the result. Neither given (or empty content) gives [`Error::NotConfigured`]; both
    /// given gives [`Error::ConflictingFlags`].
    pub fn from_flags(config_file: Option<&Path>, config: Option<&str>) -> Result<BucketConfig> {
        let config_file = config_file.filter(|p| !p.as_os_str().is_empty());
        let config = config.filter(|c| !c.is_empty());
        match (config_file, config) {
            (Some(_), Some(_)) => Err(Error::ConflictingFlags),
            (None, None) => Err(Error::NotConfigured),
            (None, Some(content)) => BucketConfig::parse(content),
            (Some(path), None) => {
                let content =
                    std::fs::read_to_string(path).map_err(|source| Error::ReadConfigFile {
                        path: path.to_path_buf(),
                        source,
                    })?;
                BucketConfig::parse(&content)
            }
        }
    }

    /// Selected provider.
    pub fn provider(&self) -> ProviderKind {
        match &self.provider {
            ProviderConfig::Filesystem(_) => ProviderKind::Filesystem,
            ProviderConfig::S3(_) => ProviderKind::S3,
            ProviderConfig::Gcs(_) => ProviderKind::Gcs,
            ProviderConfig::Azure(_) => ProviderKind::Azure,
        }
    }

    /// Bucket name used as the `bucket` metrics label: the S3/GCS bucket, the Azure container or
    /// the FILESYSTEM directory.
    pub fn bucket_name(&self) -> String {
        match &self.provider {
            ProviderConfig::Filesystem(c) => c.directory.clone(),
            ProviderConfig::S3(c) => c.bucket.clone(),
            ProviderConfig::Gcs(c) => c.bucket.clone(),
            ProviderConfig::Azure(c) => c.container.clone(),
        }
    }

    /// The `prefix` key with surrounding slashes removed (empty when not set).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The `hedging_config` block, when given.
    pub fn hedging(&self) -> Option<&HedgingConfig> {
        self.hedging.as_ref()
    }

    /// Retry policy the built bucket will use (the provider's `max_retries` key, when set,
    /// overrides the default number of retries).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Replaces the retry policy (for example shorter backoffs in tests).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Replaces every `$(NAME)` (NAME made of ASCII letters, digits and `_`) with `lookup(NAME)`;
/// an unknown name is an error. Other `$` sequences are kept as they are.
pub(crate) fn expand_env(content: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with(')') {
            let name = &after[..name_len];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(Error::UnsetEnvVar {
                        name: name.to_owned(),
                    });
                }
            }
            rest = &after[name_len + 1..];
        } else {
            out.push_str("$(");
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The first YAML document of a stream (Thanos ignores the following ones).
fn first_document(content: &str) -> &str {
    let mut start = 0;
    let mut seen_content = false;
    let mut offset = 0;
    for line in content.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let is_marker = trimmed == "---" || trimmed.starts_with("--- ");
        let is_end = trimmed == "..." || trimmed.starts_with("... ");
        if is_marker || is_end {
            if seen_content || is_end {
                return &content[start..offset];
            }
            start = offset + line.len();
        } else if !trimmed.trim_start().is_empty()
            && !trimmed.trim_start().starts_with('#')
            && !trimmed.starts_with('%')
        {
            seen_content = true;
        }
        offset += line.len();
    }
    &content[start..]
}

#[derive(Deserialize)]
struct TypeProbe {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document<C> {
    #[serde(rename = "type")]
    _kind: String,
    #[serde(default = "none")]
    config: Option<C>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    hedging_config: Option<HedgingConfig>,
}

fn none<C>() -> Option<C> {
    None
}

fn yaml_err(source: serde_saphyr::Error) -> Error {
    Error::Yaml {
        source: Box::new(source),
    }
}

fn parse_expanded(content: &str) -> Result<BucketConfig> {
    let doc = first_document(content);
    if doc
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(Error::NotConfigured);
    }
    let probe: TypeProbe = serde_saphyr::from_str(doc).map_err(yaml_err)?;
    let kind = ProviderKind::from_type(probe.kind.as_deref().unwrap_or(""))?;
    let (provider, prefix, hedging, max_retries) = match kind {
        ProviderKind::Filesystem => {
            let d: Document<FilesystemConfig> = serde_saphyr::from_str(doc).map_err(yaml_err)?;
            let c = d.config.unwrap_or_default();
            c.validate()?;
            (
                ProviderConfig::Filesystem(c),
                d.prefix,
                d.hedging_config,
                None,
            )
        }
        ProviderKind::S3 => {
            let d: Document<S3Config> = serde_saphyr::from_str(doc).map_err(yaml_err)?;
            let c = d.config.unwrap_or_default();
            c.validate()?;
            let retries = c.max_retries;
            (
                ProviderConfig::S3(Box::new(c)),
                d.prefix,
                d.hedging_config,
                retries,
            )
        }
        ProviderKind::Gcs => {
            let d: Document<GcsConfig> = serde_saphyr::from_str(doc).map_err(yaml_err)?;
            let c = d.config.unwrap_or_default();
            c.validate()?;
            let retries = c.max_retries;
            (
                ProviderConfig::Gcs(Box::new(c)),
                d.prefix,
                d.hedging_config,
                retries,
            )
        }
        ProviderKind::Azure => {
            let d: Document<AzureConfig> = serde_saphyr::from_str(doc).map_err(yaml_err)?;
            let c = d.config.unwrap_or_default();
            c.validate()?;
            let retries = c.max_retries;
            (
                ProviderConfig::Azure(Box::new(c)),
                d.prefix,
                d.hedging_config,
                retries,
            )
        }
    };
    if let Some(h) = &hedging {
        validate_hedging(kind.as_str(), h)?;
    }
    let mut retry = RetryPolicy::default();
    if let Some(n) = max_retries.filter(|n| *n > 0) {
        retry.max_retries = n;
    }
    Ok(BucketConfig {
        provider,
        prefix: prefix.unwrap_or_default().trim_matches('/').to_owned(),
        hedging,
        retry,
    })
}

fn validate_hedging(provider: &'static str, h: &HedgingConfig) -> Result<()> {
    if !(h.quantile > 0.0 && h.quantile <= 1.0) {
        return Err(Error::InvalidKey {
            provider,
            key: "hedging_config.quantile",
            reason: format!("must be in (0, 1], got {}", h.quantile),
        });
    }
    if h.enabled && h.up_to == 0 {
        return Err(Error::InvalidKey {
            provider,
            key: "hedging_config.up_to",
            reason: "must be at least 1 when hedging is enabled".to_owned(),
        });
    }
    Ok(())
}

/// A Go `time.Duration` string such as `1m30s`, `500ms` or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(de)?;
        parse_go_duration(&s)
            .map(GoDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a Go duration: a sequence of decimal numbers with units `ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`; a bare `0` is allowed. Negative durations are rejected.
pub(crate) fn parse_go_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let invalid = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(invalid());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if num_len == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        total_nanos += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Validates an S3 `endpoint` (`host[:port]`, no scheme, no path).
pub(crate) fn validate_host_port(endpoint: &str) -> std::result::Result<(), String> {
    if endpoint.contains("://") {
        return Err(format!(
            "{endpoint:?} must be host[:port] without a scheme (use insecure: true for plain http)"
        ));
    }
    let (host, port) = if let Some(rest) = endpoint.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{endpoint:?}: unterminated IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{endpoint:?}: unexpected text after IPv6 address"))?,
            ),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{endpoint:?}: invalid IPv6 address"));
        }
        (None, port)
    } else {
        match endpoint.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(endpoint), None),
        }
    };
    if let Some(host) = host {
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!("{endpoint:?}: invalid host {host:?}"));
        }
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("{endpoint:?}: invalid port {port:?}")),
        }
    }
    Ok(())
}

/// `FILESYSTEM` provider configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FilesystemConfig {
    pub(crate) directory: String,
}

impl FilesystemConfig {
    fn validate(&self) -> Result<()> {
        if self.directory.is_empty() {
            return Err(Error::MissingKey {
                provider: "FILESYSTEM",
                key: "directory",
            });
        }
        Ok(())
    }

    pub(crate) fn directory(&self) -> PathBuf {
        PathBuf::from(&self.directory)
    }
}

/// `http_config` block shared by the HTTP providers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    pub(crate) idle_conn_timeout: Option<GoDuration>,
    pub(crate) response_header_timeout: Option<GoDuration>,
    pub(crate) insecure_skip_verify: bool,
    pub(crate) tls_handshake_timeout: Option<GoDuration>,
    pub(crate) expect_continue_timeout: Option<GoDuration>,
    pub(crate) max_idle_conns: Option<u64>,
    pub(crate) max_idle_conns_per_host: Option<u64>,
    pub(crate) max_conns_per_host: Option<u64>,
    pub(crate) tls_config: TlsConfig,
    pub(crate) disable_compression: Option<bool>,
}

/// `http_config.tls_config` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TlsConfig {
    pub(crate) ca_file: String,
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
    pub(crate) server_name: String,
    pub(crate) insecure_skip_verify: bool,
}

impl HttpConfig {
    /// Rejects settings that cannot be honoured and would be unsafe to ignore.
    fn validate(&self, provider: &'static str) -> Result<()> {
        let tls = &self.tls_config;
        if !tls.cert_file.is_empty() {
            return Err(Error::InvalidKey {
                provider,
                key: "http_config.tls_config.cert_file",
                reason: "client certificates (mTLS) are not supported".to_owned(),
            });
        }
        if !tls.key_file.is_empty() {
            return Err(Error::InvalidKey {
                provider,
                key: "http_config.tls_config.key_file",
                reason: "client certificates (mTLS) are not supported".to_owned(),
            });
        }
        if !tls.server_name.is_empty() {
            return Err(Error::InvalidKey {
                provider,
                key: "http_config.tls_config.server_name",
                reason: "overriding the TLS server name is not supported".to_owned(),
            });
        }
        Ok(())
    }
}

/// `trace` block of the S3 provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TraceConfig {
    pub(crate) enable: Option<bool>,
}

/// `sse_config` block of the S3 provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SseConfig {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) kms_key_id: String,
    pub(crate) kms_encryption_context: BTreeMap<String, String>,
    pub(crate) encryption_key: String,
}

/// Server-side encryption selected by `sse_config.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sse {
    S3,
    Kms { key_id: String },
    CustomerKey { key_file: PathBuf },
}

/// S3 addressing selected by `bucket_lookup_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BucketLookup {
    Auto,
    Path,
    VirtualHosted,
}

/// `S3` provider configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct S3Config {
    pub(crate) bucket: String,
    pub(crate) endpoint: String,
    pub(crate) region: String,
    pub(crate) disable_dualstack: Option<bool>,
    pub(crate) aws_sdk_auth: bool,
    pub(crate) access_key: String,
    pub(crate) insecure: bool,
    pub(crate) signature_version2: Option<bool>,
    pub(crate) secret_key: String,
    pub(crate) session_token: String,
    pub(crate) put_user_metadata: BTreeMap<String, String>,
    pub(crate) http_config: HttpConfig,
    pub(crate) trace: TraceConfig,
    pub(crate) list_objects_version: String,
    pub(crate) bucket_lookup_type: String,
    pub(crate) send_content_md5: Option<bool>,
    pub(crate) disable_multipart: bool,
    pub(crate) part_size: Option<u64>,
    pub(crate) sse_config: SseConfig,
    pub(crate) sts_endpoint: String,
    pub(crate) max_retries: Option<u32>,
}

impl S3Config {
    fn validate(&self) -> Result<()> {
        const P: &str = "S3";
        if self.bucket.is_empty() {
            return Err(Error::MissingKey {
                provider: P,
                key: "bucket",
            });
        }
        if self.endpoint.is_empty() {
            if !self.aws_sdk_auth && self.region.is_empty() {
                return Err(Error::MissingKey {
                    provider: P,
                    key: "endpoint",
                });
            }
        } else {
            validate_host_port(&self.endpoint).map_err(|reason| Error::InvalidKey {
                provider: P,
                key: "endpoint",
                reason,
            })?;
        }
        match (self.access_key.is_empty(), self.secret_key.is_empty()) {
            (false, true) => {
                return Err(Error::MissingKey {
                    provider: P,
                    key: "secret_key",
                });
            }
            (true, false) => {
                return Err(Error::MissingKey {
                    provider: P,
                    key: "access_key",
                });
            }
            _ => {}
        }
        if self.aws_sdk_auth && !self.access_key.is_empty() {
            return Err(Error::InvalidKey {
                provider: P,
                key: "aws_sdk_auth",
                reason: "cannot be combined with access_key/secret_key".to_owned(),
            });
        }
        self.bucket_lookup()?;
        match self.list_objects_version.as_str() {
            "" | "v1" | "v2" => {}
            other => {
                return Err(Error::InvalidKey {
                    provider: P,
                    key: "list_objects_version",
                    reason: format!("{other:?} is not one of v1, v2"),
                });
            }
        }
        if let Some(size) = self.part_size
            && size < MIN_PART_SIZE
        {
            return Err(Error::InvalidKey {
                provider: P,
                key: "part_size",
                reason: format!("{size} is below the S3 minimum part size {MIN_PART_SIZE}"),
            });
        }
        self.sse()?;
        self.http_config.validate(P)
    }

    pub(crate) fn bucket_lookup(&self) -> Result<BucketLookup> {
        match self.bucket_lookup_type.as_str() {
            "" | "auto" => Ok(BucketLookup::Auto),
            "path" => Ok(BucketLookup::Path),
            "virtual-hosted" => Ok(BucketLookup::VirtualHosted),
            other => Err(Error::InvalidKey {
                provider: "S3",
                key: "bucket_lookup_type",
                reason: format!("{other:?} is not one of auto, path, virtual-hosted"),
            }),
        }
    }

    pub(crate) fn sse(&self) -> Result<Option<Sse>> {
        const P: &str = "S3";
        let c = &self.sse_config;
        if !c.kms_encryption_context.is_empty() {
            return Err(Error::InvalidKey {
                provider: P,
                key: "sse_config.kms_encryption_context",
                reason: "a KMS encryption context is not supported by this client".to_owned(),
            });
        }
        match c.kind.as_str() {
            "" => {
                if !c.kms_key_id.is_empty() || !c.encryption_key.is_empty() {
                    return Err(Error::MissingKey {
                        provider: P,
                        key: "sse_config.type",
                    });
                }
                Ok(None)
            }
            "SSE-S3" => Ok(Some(Sse::S3)),
            "SSE-KMS" => {
                if c.kms_key_id.is_empty() {
                    return Err(Error::MissingKey {
                        provider: P,
                        key: "sse_config.kms_key_id",
                    });
                }
                Ok(Some(Sse::Kms {
                    key_id: c.kms_key_id.clone(),
                }))
            }
            "SSE-C" => {
                if c.encryption_key.is_empty() {
                    return Err(Error::MissingKey {
                        provider: P,
                        key: "sse_config.encryption_key",
                    });
                }
                Ok(Some(Sse::CustomerKey {
                    key_file: PathBuf::from(&c.encryption_key),
                }))
            }
            other => Err(Error::InvalidKey {
                provider: P,
                key: "sse_config.type",
                reason: format!("{other:?} is not one of SSE-S3, SSE-KMS, SSE-C"),
            }),
        }
    }
}

/// `GCS` provider configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct GcsConfig {
    pub(crate) bucket: String,
    pub(crate) service_account: String,
    pub(crate) use_grpc: Option<bool>,
    pub(crate) grpc_conn_pool_size: Option<u32>,
    pub(crate) http_config: HttpConfig,
    pub(crate) chunk_size_bytes: Option<u64>,
    pub(crate) max_retries: Option<u32>,
}

impl GcsConfig {
    fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() {
            return Err(Error::MissingKey {
                provider: "GCS",
                key: "bucket",
            });
        }
        if let Some(size) = self.chunk_size_bytes
            && size < MIN_PART_SIZE
        {
            return Err(Error::InvalidKey {
                provider: "GCS",
                key: "chunk_size_bytes",
                reason: format!("{size} is below the minimum part size {MIN_PART_SIZE}"),
            });
        }
        self.http_config.validate("GCS")
    }
}

/// `reader_config` block of the Azure provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AzureReaderConfig {
    pub(crate) max_retry_requests: Option<u32>,
}

/// `pipeline_config` block of the Azure provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AzurePipelineConfig {
    pub(crate) max_tries: Option<u32>,
    pub(crate) try_timeout: Option<GoDuration>,
    pub(crate) retry_delay: Option<GoDuration>,
    pub(crate) max_retry_delay: Option<GoDuration>,
}

/// `AZURE` provider configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AzureConfig {
    pub(crate) az_tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) storage_account: String,
    pub(crate) storage_account_key: String,
    pub(crate) storage_connection_string: String,
    pub(crate) storage_create_container: Option<bool>,
    pub(crate) container: String,
    pub(crate) endpoint: String,
    pub(crate) user_assigned_id: String,
    pub(crate) max_retries: Option<u32>,
    pub(crate) reader_config: AzureReaderConfig,
    pub(crate) pipeline_config: AzurePipelineConfig,
    pub(crate) http_config: HttpConfig,
    pub(crate) msi_resource: String,
    pub(crate) azure_storage_account_type: String,
}

/// Fields of an Azure `storage_connection_string` that we use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AzureConnectionString {
    pub(crate) account_name: Option<String>,
    pub(crate) account_key: Option<String>,
    pub(crate) blob_endpoint: Option<String>,
    pub(crate) endpoint_suffix: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) sas: Option<String>,
    pub(crate) use_development_storage: bool,
}

/// Parses `Key=Value;Key=Value` (keys case-insensitive, values may contain `=`).
pub(crate) fn parse_azure_connection_string(
    s: &str,
) -> std::result::Result<AzureConnectionString, String> {
    let mut out = AzureConnectionString::default();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("segment {part:?} is not Key=Value"))?;
        let value = value.trim().to_owned();
        match key.trim().to_ascii_lowercase().as_str() {
            "accountname" => out.account_name = Some(value),
            "accountkey" => out.account_key = Some(value),
            "blobendpoint" => out.blob_endpoint = Some(value),
            "endpointsuffix" => out.endpoint_suffix = Some(value),
            "defaultendpointsprotocol" => out.protocol = Some(value),
            "sharedaccesssignature" => out.sas = Some(value),
            "usedevelopmentstorage" => {
                out.use_development_storage = value.eq_ignore_ascii_case("true")
            }
            // Endpoints of other Azure storage services are irrelevant for blobs.
            "queueendpoint" | "tableendpoint" | "fileendpoint" => {}
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    Ok(out)
}

impl AzureConfig {
    fn validate(&self) -> Result<()> {
        const P: &str = "AZURE";
        if self.container.is_empty() {
            return Err(Error::MissingKey {
                provider: P,
                key: "container",
            });
        }
        let conn = self.connection_string()?;
        let account_in_conn = conn
            .as_ref()
            .is_some_and(|c| c.account_name.is_some() || c.use_development_storage);
        if self.storage_account.is_empty() && !account_in_conn {
            return Err(Error::MissingKey {
                provider: P,
                key: "storage_account",
            });
        }
        if !self.storage_account_key.is_empty() && conn.is_some() {
            return Err(Error::InvalidKey {
                provider: P,
                key: "storage_connection_string",
                reason: "cannot be combined with storage_account_key".to_owned(),
            });
        }
        if !self.client_secret.is_empty() {
            if self.client_id.is_empty() {
                return Err(Error::MissingKey {
                    provider: P,
                    key: "client_id",
                });
            }
            if self.az_tenant_id.is_empty() {
                return Err(Error::MissingKey {
                    provider: P,
                    key: "az_tenant_id",
                });
            }
        }
        if self.endpoint.contains("://") {
            return Err(Error::InvalidKey {
                provider: P,
                key: "endpoint",
                reason: format!(
                    "{:?} must be a host suffix such as blob.core.windows.net, without a scheme",
                    self.endpoint
                ),
            });
        }
        self.http_config.validate(P)
    }

    pub(crate) fn connection_string(&self) -> Result<Option<AzureConnectionString>> {
        if self.storage_connection_string.is_empty() {
            return Ok(None);
        }
        parse_azure_connection_string(&self.storage_connection_string)
            .map(Some)
            .map_err(|reason| Error::InvalidKey {
                provider: "AZURE",
                key: "storage_connection_string",
                reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(yaml: &str) -> String {
        match BucketConfig::parse(yaml) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    const S3_MIN: &str = "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  access_key: a\n  secret_key: s\n";

    #[test]
    fn filesystem() {
        let c = BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n").unwrap();
        assert_eq!(c.provider(), ProviderKind::Filesystem);
        assert_eq!(c.bucket_name(), "/tmp/x");
        assert_eq!(c.prefix(), "");
        assert!(c.hedging().is_none());
    }

    #[test]
    fn type_is_case_insensitive() {
        for t in ["s3", "S3", "s3 "] {
            let yaml = S3_MIN.replace("type: S3", &format!("type: \"{t}\""));
            assert_eq!(
                BucketConfig::parse(&yaml).unwrap().provider(),
                ProviderKind::S3
            );
        }
        let c = BucketConfig::parse("type: filesystem\nconfig:\n  directory: d\n").unwrap();
        assert_eq!(c.provider(), ProviderKind::Filesystem);
        let c = BucketConfig::parse("type: gcs\nconfig:\n  bucket: g\n").unwrap();
        assert_eq!(c.provider(), ProviderKind::Gcs);
        let c = BucketConfig::parse(
            "type: Azure\nconfig:\n  storage_account: acc\n  storage_account_key: a2V5\n  container: c\n",
        )
        .unwrap();
        assert_eq!(c.provider(), ProviderKind::Azure);
        assert_eq!(c.bucket_name(), "c");
    }

    #[test]
    fn s3_all_keys_accepted() {
        let yaml = r#"
type: S3
config:
  bucket: thanos
  endpoint: s3.us-east-1.amazonaws.com
  region: us-east-1
  disable_dualstack: false
  aws_sdk_auth: false
  access_key: ak
  insecure: false
  signature_version2: false
  secret_key: sk
  session_token: tok
  put_user_metadata:
    X-Amz-Storage-Class: STANDARD_IA
    team: obs
  http_config:
    idle_conn_timeout: 1m30s
    response_header_timeout: 2m
    insecure_skip_verify: false
    tls_handshake_timeout: 10s
    expect_continue_timeout: 1s
    max_idle_conns: 100
    max_idle_conns_per_host: 100
    max_conns_per_host: 0
    tls_config:
      ca_file: ""
      cert_file: ""
      key_file: ""
      server_name: ""
      insecure_skip_verify: false
    disable_compression: false
  trace:
    enable: false
  list_objects_version: v2
  bucket_lookup_type: auto
  send_content_md5: true
  disable_multipart: false
  part_size: 67108864
  sse_config:
    type: SSE-KMS
    kms_key_id: key-1
  sts_endpoint: ""
  max_retries: 7
prefix: /tenant-a/
hedging_config:
  enabled: true
  up_to: 2
  quantile: 0.95
"#;
        let c = BucketConfig::parse(yaml).unwrap();
        assert_eq!(c.provider(), ProviderKind::S3);
        assert_eq!(c.bucket_name(), "thanos");
        assert_eq!(c.prefix(), "tenant-a");
        assert_eq!(c.retry_policy().max_retries, 7);
        let h = c.hedging().unwrap();
        assert!(h.enabled);
        assert_eq!(h.up_to, 2);
        assert!((h.quantile - 0.95).abs() < 1e-9);
        let ProviderConfig::S3(s3) = &c.provider else {
            panic!("not s3")
        };
        assert_eq!(
            s3.http_config.idle_conn_timeout,
            Some(GoDuration(Duration::from_secs(90)))
        );
        assert_eq!(
            s3.sse().unwrap(),
            Some(Sse::Kms {
                key_id: "key-1".to_owned()
            })
        );
        assert_eq!(s3.put_user_metadata.len(), 2);
    }

    #[test]
    fn gcs_and_azure_keys_accepted() {
        let gcs = r#"
type: GCS
config:
  bucket: g
  service_account: ""
  use_grpc: false
  grpc_conn_pool_size: 0
  http_config:
    idle_conn_timeout: 90s
  chunk_size_bytes: 16777216
  max_retries: 2
"#;
        let c = BucketConfig::parse(gcs).unwrap();
        assert_eq!(c.bucket_name(), "g");
        assert_eq!(c.retry_policy().max_retries, 2);
        let azure = r#"
type: AZURE
config:
  az_tenant_id: t
  client_id: id
  client_secret: secret
  storage_account: acc
  storage_account_key: ""
  storage_connection_string: ""
  storage_create_container: true
  container: blocks
  endpoint: blob.core.windows.net
  user_assigned_id: ""
  max_retries: 0
  reader_config:
    max_retry_requests: 3
  pipeline_config:
    max_tries: 3
    try_timeout: 0s
    retry_delay: 1s
    max_retry_delay: 5s
  http_config:
    insecure_skip_verify: false
  msi_resource: ""
"#;
        let c = BucketConfig::parse(azure).unwrap();
        assert_eq!(c.bucket_name(), "blocks");
        assert_eq!(c.retry_policy(), &RetryPolicy::default());
    }

    #[test]
    fn prefix_is_trimmed() {
        let c = BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: d\nprefix: a/b/\n")
            .unwrap();
        assert_eq!(c.prefix(), "a/b");
    }

    #[test]
    fn unknown_top_level_key() {
        let err = parse_err("type: FILESYSTEM\nconfig:\n  directory: d\nbogus_key: 1\n");
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn unknown_config_key_is_named() {
        let err = parse_err(&format!("{S3_MIN}  not_a_key: x\n"));
        assert!(err.contains("not_a_key"), "{err}");
        let err = parse_err("type: FILESYSTEM\nconfig:\n  directory: d\n  dir: e\n");
        assert!(err.contains("`dir`") || err.contains("dir"), "{err}");
        let err = parse_err(&format!("{S3_MIN}  http_config:\n    idle_timeout: 1s\n"));
        assert!(err.contains("idle_timeout"), "{err}");
    }

    #[test]
    fn missing_required_keys() {
        let err = parse_err("type: S3\nconfig:\n  endpoint: h:1\n");
        assert!(err.contains("missing key bucket"), "{err}");
        let err = parse_err("type: S3\nconfig:\n  bucket: b\n");
        assert!(err.contains("missing key endpoint"), "{err}");
        // AWS setups with only a region, or SDK auth, need no endpoint.
        BucketConfig::parse("type: S3\nconfig:\n  bucket: b\n  region: eu-west-1\n").unwrap();
        BucketConfig::parse("type: S3\nconfig:\n  bucket: b\n  aws_sdk_auth: true\n").unwrap();
        let err = parse_err("type: FILESYSTEM\nconfig: {}\n");
        assert!(err.contains("missing key directory"), "{err}");
        let err = parse_err("type: FILESYSTEM\n");
        assert!(err.contains("missing key directory"), "{err}");
        let err = parse_err("type: GCS\nconfig:\n  service_account: x\n");
        assert!(err.contains("missing key bucket"), "{err}");
        let err = parse_err("type: AZURE\nconfig:\n  storage_account: a\n");
        assert!(err.contains("missing key container"), "{err}");
        let err = parse_err("type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  access_key: a\n");
        assert!(err.contains("missing key secret_key"), "{err}");
        let err = parse_err("config:\n  directory: d\n");
        assert!(err.contains("missing key type"), "{err}");
    }

    #[test]
    fn endpoint_validation() {
        for bad in [
            "http://minio:9000",
            "https://s3.amazonaws.com",
            "host:port",
            "host:0",
            "a b",
            "host/path",
            "[::1",
        ] {
            let yaml = S3_MIN.replace("127.0.0.1:9000", &format!("{bad:?}"));
            let err = parse_err(&yaml);
            assert!(err.contains("invalid key endpoint"), "{bad}: {err}");
        }
        for good in ["minio:9000", "s3.amazonaws.com", "[::1]:9000", "10.0.0.1"] {
            let yaml = S3_MIN.replace("127.0.0.1:9000", &format!("{good:?}"));
            BucketConfig::parse(&yaml).unwrap();
        }
    }

    #[test]
    fn security_relevant_keys_are_errors() {
        let err = parse_err(&format!(
            "{S3_MIN}  sse_config:\n    type: SSE-KMS\n    kms_key_id: k\n    kms_encryption_context:\n      a: b\n"
        ));
        assert!(err.contains("sse_config.kms_encryption_context"), "{err}");
        let err = parse_err(&format!(
            "{S3_MIN}  http_config:\n    tls_config:\n      cert_file: /c.pem\n"
        ));
        assert!(err.contains("http_config.tls_config.cert_file"), "{err}");
        let err = parse_err(&format!("{S3_MIN}  sse_config:\n    type: SSE-KMS\n"));
        assert!(err.contains("sse_config.kms_key_id"), "{err}");
        let err = parse_err(&format!("{S3_MIN}  sse_config:\n    type: bogus\n"));
        assert!(err.contains("sse_config.type"), "{err}");
        let err = parse_err(&format!("{S3_MIN}  part_size: 1024\n"));
        assert!(err.contains("part_size"), "{err}");
    }

    #[test]
    fn unsupported_and_unknown_types() {
        for t in ["SWIFT", "cos", "ALIYUNOSS", "BOS", "OCI", "OBS"] {
            let err = parse_err(&format!("type: {t}\nconfig: {{}}\n"));
            assert!(err.contains("not supported") && err.contains("S3"), "{err}");
        }
        let err = parse_err("type: NOPE\n");
        assert!(err.contains("unknown objstore type"), "{err}");
    }

    #[test]
    fn broken_yaml_is_a_clear_error() {
        let err = parse_err("type: S3\nconfig: [unclosed\n");
        assert!(err.starts_with("parse objstore config yaml"), "{err}");
        let err = parse_err("type: S3\nconfig:\n  bucket: b\n   endpoint: x\n");
        assert!(err.starts_with("parse objstore config yaml"), "{err}");
        let err = parse_err(&format!(
            "{S3_MIN}  http_config:\n    idle_conn_timeout: soon\n"
        ));
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn only_first_document_is_used() {
        let yaml =
            "---\ntype: FILESYSTEM\nconfig:\n  directory: first\n---\ntype: S3\nwhatever: 1\n";
        let c = BucketConfig::parse(yaml).unwrap();
        assert_eq!(c.bucket_name(), "first");
    }

    #[test]
    fn empty_content_is_not_configured() {
        assert!(matches!(BucketConfig::parse(""), Err(Error::NotConfigured)));
        assert!(matches!(
            BucketConfig::parse("# nothing\n\n"),
            Err(Error::NotConfigured)
        ));
    }

    #[test]
    fn flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("objstore.yml");
        std::fs::write(&file, "type: FILESYSTEM\nconfig:\n  directory: fromfile\n").unwrap();
        let c = BucketConfig::from_flags(Some(&file), None).unwrap();
        assert_eq!(c.bucket_name(), "fromfile");
        let c = BucketConfig::from_flags(
            None,
            Some("type: FILESYSTEM\nconfig:\n  directory: inline\n"),
        )
        .unwrap();
        assert_eq!(c.bucket_name(), "inline");
        assert!(matches!(
            BucketConfig::from_flags(Some(&file), Some("type: FILESYSTEM")),
            Err(Error::ConflictingFlags)
        ));
        assert!(matches!(
            BucketConfig::from_flags(None, None),
            Err(Error::NotConfigured)
        ));
        assert!(matches!(
            BucketConfig::from_flags(None, Some("")),
            Err(Error::NotConfigured)
        ));
        let missing = dir.path().join("missing.yml");
        let err = BucketConfig::from_flags(Some(&missing), None).unwrap_err();
        assert!(err.to_string().contains("missing.yml"), "{err}");
    }

    #[test]
    fn env_substitution() {
        let lookup = |name: &str| match name {
            "SECRET" => Some("s3cr3t".to_owned()),
            "BUCKET_1" => Some("blocks".to_owned()),
            _ => None,
        };
        let out = expand_env(
            "a: $(SECRET)\nb: $(BUCKET_1)-x\nc: $ (no) $(bad-name) $HOME\n",
            lookup,
        )
        .unwrap();
        assert_eq!(out, "a: s3cr3t\nb: blocks-x\nc: $ (no) $(bad-name) $HOME\n");
        let err = expand_env("a: $(NOT_SET_ANYWHERE)", lookup).unwrap_err();
        assert!(err.to_string().contains("NOT_SET_ANYWHERE"), "{err}");
        // Through the real environment: PATH is set for every test process.
        let path = std::env::var("PATH").unwrap();
        let c =
            BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: \"$(PATH)\"\n").unwrap();
        assert_eq!(c.bucket_name(), path);
        let err = BucketConfig::parse(
            "type: FILESYSTEM\nconfig:\n  directory: $(THANOS_OBJSTORE_TEST_UNSET_VAR)\n",
        )
        .unwrap_err();
        assert!(matches!(err, Error::UnsetEnvVar { .. }), "{err}");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("10us").unwrap(),
            Duration::from_micros(10)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "-1s", "1x", "s", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hedging_validation() {
        let err = parse_err(
            "type: FILESYSTEM\nconfig:\n  directory: d\nhedging_config:\n  quantile: 1.5\n",
        );
        assert!(err.contains("hedging_config.quantile"), "{err}");
        let c =
            BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: d\nhedging_config: {}\n")
                .unwrap();
        assert_eq!(c.hedging(), Some(&HedgingConfig::default()));
    }

    #[test]
    fn azure_connection_string() {
        let c = parse_azure_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acc;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.account_name.as_deref(), Some("acc"));
        assert_eq!(c.account_key.as_deref(), Some("a2V5=="));
        assert_eq!(c.endpoint_suffix.as_deref(), Some("core.windows.net"));
        assert!(parse_azure_connection_string("AccountName").is_err());
        assert!(parse_azure_connection_string("Foo=bar").is_err());
        let dev = parse_azure_connection_string("UseDevelopmentStorage=true").unwrap();
        assert!(dev.use_development_storage);
        // The account can come from the connection string alone.
        let yaml = "type: AZURE\nconfig:\n  container: c\n  storage_connection_string: \"AccountName=acc;AccountKey=a2V5\"\n";
        BucketConfig::parse(yaml).unwrap();
        let err = parse_err(
            "type: AZURE\nconfig:\n  container: c\n  storage_connection_string: \"nonsense\"\n",
        );
        assert!(err.contains("storage_connection_string"), "{err}");
    }
}
