//! Building `object_store` clients from a [`BucketConfig`].

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, AttributeValue, Attributes, Certificate, ClientOptions, HeaderValue, ObjectStore,
    RetryConfig,
};
use prometheus::Registry;

use crate::bucket::{Bucket, UploadOptions};
use crate::config::{
    AzureConfig, BucketConfig, BucketLookup, DEFAULT_PART_SIZE, FilesystemConfig, GcsConfig,
    HttpConfig, ProviderConfig, S3Config, Sse,
};
use crate::error::{Error, Result};
use crate::metrics::BucketMetrics;

const DEFAULT_IDLE_CONN_TIMEOUT: Duration = Duration::from_secs(90);
const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_IDLE_CONNS_PER_HOST: u64 = 100;
const DEFAULT_AZURE_ENDPOINT: &str = "blob.core.windows.net";

impl BucketConfig {
    /// Builds the bucket client, registers the `thanos_objstore_bucket_*` metrics on `registry`
    /// and wraps the client with retries and metrics. `component` (e.g. `store`, `receive`) is
    /// sent in the HTTP user agent as `thanos-<component>`. Settings the client cannot honour are
    /// logged with `tracing::warn!` naming the key.
    pub fn build(&self, component: &str, registry: &Registry) -> Result<Bucket> {
        let metrics = BucketMetrics::new(registry)?;
        self.build_with_metrics(component, &metrics)
    }

    /// Like [`BucketConfig::build`], with metric families registered beforehand (to build
    /// several buckets on one registry).
    pub fn build_with_metrics(&self, component: &str, metrics: &BucketMetrics) -> Result<Bucket> {
        let name = self.bucket_name();
        let (store, upload): (Arc<dyn ObjectStore>, UploadOptions) = match &self.provider {
            ProviderConfig::Filesystem(c) => (build_filesystem(c)?, UploadOptions::default()),
            ProviderConfig::S3(c) => build_s3(c, component)?,
            ProviderConfig::Gcs(c) => build_gcs(c, component)?,
            ProviderConfig::Azure(c) => build_azure(c, component)?,
        };
        let store: Arc<dyn ObjectStore> = if self.prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, self.prefix.as_str()))
        };
        if self.hedging().is_some_and(|h| h.enabled) {
            tracing::warn!(
                key = "hedging_config.enabled",
                "hedged requests are not implemented; requests are sent once"
            );
        }
        tracing::info!(
            provider = self.provider().as_str(),
            bucket = %name,
            prefix = %self.prefix,
            component,
            "object storage bucket configured"
        );
        let bucket = Bucket::new(name, store, self.retry.clone(), upload, metrics);
        Ok(match &self.provider {
            ProviderConfig::Filesystem(c) => {
                let dir = c.directory();
                let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                bucket.with_local_dir(dir.join(&self.prefix))
            }
            _ => bucket,
        })
    }
}

fn warn_unsupported(provider: &'static str, key: &'static str, what: &str) {
    tracing::warn!(
        provider,
        key,
        "objstore config key not supported, ignored: {what}"
    );
}

fn build_filesystem(c: &FilesystemConfig) -> Result<Arc<dyn ObjectStore>> {
    let dir = c.directory();
    std::fs::create_dir_all(&dir).map_err(|source| Error::CreateDirectory {
        path: dir.clone(),
        source,
    })?;
    let store = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|source| Error::Build {
            provider: "FILESYSTEM",
            bucket: c.directory.clone(),
            source: Box::new(source),
        })?
        .with_automatic_cleanup(true);
    Ok(Arc::new(store))
}

/// Disables `object_store`'s own HTTP retries: [`Bucket`] retries whole operations.
fn no_client_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    }
}

fn client_options(
    provider: &'static str,
    http: &HttpConfig,
    component: &str,
    allow_http: bool,
) -> Result<ClientOptions> {
    let dur = |d: Option<crate::config::GoDuration>, default: Duration| d.map_or(default, |d| d.0);
    let mut opts = ClientOptions::new()
        .with_allow_http(allow_http)
        // Large objects must not hit a total-request deadline; a stalled read still times out.
        .with_timeout_disabled()
        .with_read_timeout(dur(
            http.response_header_timeout,
            DEFAULT_RESPONSE_HEADER_TIMEOUT,
        ))
        .with_connect_timeout(dur(
            http.tls_handshake_timeout,
            DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        ))
        .with_pool_idle_timeout(dur(http.idle_conn_timeout, DEFAULT_IDLE_CONN_TIMEOUT))
        .with_pool_max_idle_per_host(
            usize::try_from(
                http.max_idle_conns_per_host
                    .unwrap_or(DEFAULT_MAX_IDLE_CONNS_PER_HOST),
            )
            .unwrap_or(usize::MAX),
        );
    if let Ok(agent) = HeaderValue::from_str(&format!("thanos-{component}")) {
        opts = opts.with_user_agent(agent);
    }
    if http.insecure_skip_verify || http.tls_config.insecure_skip_verify {
        tracing::warn!(
            provider,
            "TLS certificate verification disabled by objstore config"
        );
        opts = opts.with_allow_invalid_certificates(true);
    }
    if !http.tls_config.ca_file.is_empty() {
        let path = std::path::PathBuf::from(&http.tls_config.ca_file);
        let pem = std::fs::read(&path).map_err(|source| Error::ReadKeyFile {
            provider,
            key: "http_config.tls_config.ca_file",
            path: path.clone(),
            source,
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|err| Error::InvalidKey {
            provider,
            key: "http_config.tls_config.ca_file",
            reason: format!("parse PEM certificate {}: {err}", path.display()),
        })?;
        opts = opts.with_root_certificate(cert);
    }
    if http.expect_continue_timeout.is_some() {
        warn_unsupported(
            provider,
            "http_config.expect_continue_timeout",
            "no Expect: 100-continue",
        );
    }
    if http.max_idle_conns.is_some() {
        warn_unsupported(
            provider,
            "http_config.max_idle_conns",
            "only a per-host idle limit exists",
        );
    }
    if http.max_conns_per_host.is_some_and(|n| n > 0) {
        warn_unsupported(
            provider,
            "http_config.max_conns_per_host",
            "connections are not capped",
        );
    }
    if http.disable_compression.is_some() {
        warn_unsupported(
            provider,
            "http_config.disable_compression",
            "not configurable",
        );
    }
    Ok(opts)
}

fn build_s3(c: &S3Config, component: &str) -> Result<(Arc<dyn ObjectStore>, UploadOptions)> {
    const P: &str = "S3";
    let mut b = if c.aws_sdk_auth || c.access_key.is_empty() {
        // Environment keys, web identity, container credentials, then instance metadata.
        AmazonS3Builder::from_env()
    } else {
        AmazonS3Builder::new()
            .with_access_key_id(&c.access_key)
            .with_secret_access_key(&c.secret_key)
    };
    b = b.with_bucket_name(&c.bucket);
    if !c.session_token.is_empty() {
        b = b.with_token(&c.session_token);
    }
    if !c.region.is_empty() {
        b = b.with_region(&c.region);
    }
    let scheme = if c.insecure { "http" } else { "https" };
    let is_aws = c.endpoint.is_empty() || c.endpoint.ends_with(".amazonaws.com");
    let virtual_hosted = match c.bucket_lookup()? {
        BucketLookup::Path => false,
        BucketLookup::VirtualHosted => true,
        BucketLookup::Auto => is_aws,
    };
    if !c.endpoint.is_empty() {
        let endpoint = if virtual_hosted {
            format!("{scheme}://{}.{}", c.bucket, c.endpoint)
        } else {
            format!("{scheme}://{}", c.endpoint)
        };
        b = b.with_endpoint(endpoint);
    }
    b = b.with_virtual_hosted_style_request(virtual_hosted && !c.endpoint.is_empty());
    if !c.sts_endpoint.is_empty() {
        b = b.with_config(AmazonS3ConfigKey::StsEndpoint, &c.sts_endpoint);
    }
    match c.sse()? {
        None => {}
        Some(Sse::S3) => {
            // The encryption key enum is not exported; its string form is stable.
            let key = "aws_server_side_encryption"
                .parse::<AmazonS3ConfigKey>()
                .map_err(|err| Error::InvalidKey {
                    provider: P,
                    key: "sse_config.type",
                    reason: err.to_string(),
                })?;
            b = b.with_config(key, "AES256");
        }
        Some(Sse::Kms { key_id }) => b = b.with_sse_kms_encryption(key_id),
        Some(Sse::CustomerKey { key_file }) => {
            use base64::Engine;
            let key = std::fs::read(&key_file).map_err(|source| Error::ReadKeyFile {
                provider: P,
                key: "sse_config.encryption_key",
                path: key_file.clone(),
                source,
            })?;
            b = b.with_ssec_encryption(base64::engine::general_purpose::STANDARD.encode(key));
        }
    }
    if c.signature_version2 == Some(true) {
        warn_unsupported(P, "signature_version2", "requests are signed with SigV4");
    }
    if c.list_objects_version == "v1" {
        warn_unsupported(P, "list_objects_version", "ListObjectsV2 is used");
    }
    if c.send_content_md5.is_some() {
        warn_unsupported(P, "send_content_md5", "no Content-MD5 header is sent");
    }
    if c.disable_dualstack.is_some() {
        warn_unsupported(
            P,
            "disable_dualstack",
            "dual-stack endpoints are never used",
        );
    }
    if c.trace.enable == Some(true) {
        warn_unsupported(P, "trace.enable", "no HTTP request tracing");
    }
    b = b
        .with_client_options(client_options(P, &c.http_config, component, c.insecure)?)
        .with_retry(no_client_retries());
    let store = b.build().map_err(|source| Error::Build {
        provider: P,
        bucket: c.bucket.clone(),
        source: Box::new(source),
    })?;
    let mut attributes = Attributes::new();
    for (k, v) in &c.put_user_metadata {
        let attr = if k.eq_ignore_ascii_case("X-Amz-Storage-Class") {
            Attribute::StorageClass
        } else {
            Attribute::Metadata(k.clone().into())
        };
        attributes.insert(attr, AttributeValue::from(v.clone()));
    }
    let upload = UploadOptions {
        part_size: usize::try_from(c.part_size.unwrap_or(DEFAULT_PART_SIZE)).unwrap_or(usize::MAX),
        disable_multipart: c.disable_multipart,
        attributes,
    };
    Ok((Arc::new(store), upload))
}

fn build_gcs(c: &GcsConfig, component: &str) -> Result<(Arc<dyn ObjectStore>, UploadOptions)> {
    const P: &str = "GCS";
    let mut b = if c.service_account.is_empty() {
        GoogleCloudStorageBuilder::from_env()
    } else {
        GoogleCloudStorageBuilder::new().with_service_account_key(&c.service_account)
    };
    if c.use_grpc == Some(true) {
        warn_unsupported(P, "use_grpc", "the JSON API is used");
    }
    if c.grpc_conn_pool_size.is_some() {
        warn_unsupported(P, "grpc_conn_pool_size", "the JSON API is used");
    }
    b = b
        .with_bucket_name(&c.bucket)
        .with_client_options(client_options(P, &c.http_config, component, false)?)
        .with_retry(no_client_retries());
    let store = b.build().map_err(|source| Error::Build {
        provider: P,
        bucket: c.bucket.clone(),
        source: Box::new(source),
    })?;
    let upload = UploadOptions {
        part_size: usize::try_from(c.chunk_size_bytes.unwrap_or(DEFAULT_PART_SIZE))
            .unwrap_or(usize::MAX),
        ..UploadOptions::default()
    };
    Ok((Arc::new(store), upload))
}

fn build_azure(c: &AzureConfig, component: &str) -> Result<(Arc<dyn ObjectStore>, UploadOptions)> {
    const P: &str = "AZURE";
    let conn = c.connection_string()?;
    let has_explicit_credentials = !c.storage_account_key.is_empty()
        || !c.client_secret.is_empty()
        || conn.as_ref().is_some_and(|c| {
            c.account_key.is_some() || c.sas.is_some() || c.use_development_storage
        });
    let mut b = if has_explicit_credentials {
        MicrosoftAzureBuilder::new()
    } else {
        // Managed identity, workload identity or other environment credentials.
        MicrosoftAzureBuilder::from_env()
    };
    let mut account = c.storage_account.clone();
    let mut suffix = if c.endpoint.is_empty() {
        DEFAULT_AZURE_ENDPOINT.to_owned()
    } else {
        c.endpoint.clone()
    };
    let mut allow_http = false;
    let mut blob_endpoint = None;
    if let Some(conn) = &conn {
        if let Some(name) = &conn.account_name {
            account = name.clone();
        }
        if let Some(key) = &conn.account_key {
            b = b.with_access_key(key);
        }
        if let Some(sas) = &conn.sas {
            let pairs = sas
                .trim_start_matches('?')
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (p.to_owned(), String::new()),
                })
                .collect::<Vec<_>>();
            b = b.with_sas_authorization(pairs);
        }
        if let Some(s) = &conn.endpoint_suffix {
            suffix = format!("blob.{s}");
        }
        if let Some(e) = &conn.blob_endpoint {
            allow_http = e.starts_with("http://");
            blob_endpoint = Some(e.clone());
        }
        if conn.use_development_storage {
            b = b.with_use_emulator(true);
            allow_http = true;
        }
    }
    if account.is_empty() && !conn.as_ref().is_some_and(|c| c.use_development_storage) {
        return Err(Error::MissingKey {
            provider: P,
            key: "storage_account",
        });
    }
    if !account.is_empty() {
        b = b.with_account(&account);
    }
    b = b.with_container_name(&c.container);
    if !c.storage_account_key.is_empty() {
        b = b.with_access_key(&c.storage_account_key);
    }
    if !c.client_secret.is_empty() {
        b = b.with_client_secret_authorization(&c.client_id, &c.client_secret, &c.az_tenant_id);
    } else if !c.user_assigned_id.is_empty() {
        b = b.with_client_id(&c.user_assigned_id);
    } else if !c.client_id.is_empty() {
        b = b.with_client_id(&c.client_id);
    }
    if let Some(endpoint) = blob_endpoint {
        b = b.with_endpoint(endpoint);
    } else if suffix != DEFAULT_AZURE_ENDPOINT {
        b = b.with_endpoint(format!("https://{account}.{suffix}"));
    }
    if c.storage_create_container == Some(true) {
        warn_unsupported(
            P,
            "storage_create_container",
            "containers are not created; the container must exist",
        );
    }
    if !c.msi_resource.is_empty() {
        warn_unsupported(
            P,
            "msi_resource",
            "the default managed identity resource is used",
        );
    }
    if !c.azure_storage_account_type.is_empty() {
        warn_unsupported(P, "azure_storage_account_type", "only blob storage is used");
    }
    if c.reader_config.max_retry_requests.is_some() {
        warn_unsupported(P, "reader_config.max_retry_requests", "use max_retries");
    }
    let pc = &c.pipeline_config;
    if pc.max_tries.is_some()
        || pc.try_timeout.is_some()
        || pc.retry_delay.is_some()
        || pc.max_retry_delay.is_some()
    {
        warn_unsupported(P, "pipeline_config", "use max_retries");
    }
    b = b
        .with_client_options(client_options(P, &c.http_config, component, allow_http)?)
        .with_retry(no_client_retries());
    let store = b.build().map_err(|source| Error::Build {
        provider: P,
        bucket: c.container.clone(),
        source: Box::new(source),
    })?;
    Ok((Arc::new(store), UploadOptions::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_offline_clients() {
        let s3 = BucketConfig::parse(
            "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9\n  access_key: a\n  secret_key: s\n  insecure: true\n  part_size: 5242880\n  put_user_metadata:\n    X-Amz-Storage-Class: STANDARD_IA\n",
        )
        .unwrap();
        let bucket = s3.build("test", &Registry::new()).unwrap();
        assert_eq!(bucket.name(), "b");
        let azure = BucketConfig::parse(
            "type: AZURE\nconfig:\n  storage_account: acc\n  storage_account_key: a2V5\n  container: c\n",
        )
        .unwrap();
        assert_eq!(azure.build("test", &Registry::new()).unwrap().name(), "c");
        let azure_conn = BucketConfig::parse(
            "type: AZURE\nconfig:\n  container: c\n  storage_connection_string: \"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/dev\"\n",
        )
        .unwrap();
        azure_conn.build("test", &Registry::new()).unwrap();
    }

    #[test]
    fn unreadable_key_files_are_errors() {
        let yaml = "type: S3\nconfig:\n  bucket: b\n  endpoint: h:1\n  sse_config:\n    type: SSE-C\n    encryption_key: /nonexistent/key\n";
        let err = BucketConfig::parse(yaml)
            .unwrap()
            .build("t", &Registry::new())
            .unwrap_err();
        assert!(
            err.to_string().contains("sse_config.encryption_key"),
            "{err}"
        );
        let yaml = "type: S3\nconfig:\n  bucket: b\n  endpoint: h:1\n  http_config:\n    tls_config:\n      ca_file: /nonexistent/ca.pem\n";
        let err = BucketConfig::parse(yaml)
            .unwrap()
            .build("t", &Registry::new())
            .unwrap_err();
        assert!(err.to_string().contains("ca_file"), "{err}");
    }

    /// Collects formatted log output.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ignored_keys_are_warned_about_by_name() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let yaml = "type: S3\nconfig:\n  bucket: b\n  endpoint: h:1\n  signature_version2: true\n  trace:\n    enable: true\n  http_config:\n    max_conns_per_host: 5\n";
        let cfg = BucketConfig::parse(yaml).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            cfg.build("t", &Registry::new()).unwrap();
        });
        let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        for key in [
            "signature_version2",
            "trace.enable",
            "http_config.max_conns_per_host",
        ] {
            assert!(
                out.lines().any(|l| l.contains("WARN") && l.contains(key)),
                "no warning for {key}: {out}"
            );
        }
        assert!(!out.contains("send_content_md5"), "{out}");
    }

    #[test]
    fn double_registration_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.path().display()
        );
        let cfg = BucketConfig::parse(&yaml).unwrap();
        let reg = Registry::new();
        cfg.build("t", &reg).unwrap();
        assert!(matches!(cfg.build("t", &reg), Err(Error::Metrics { .. })));
        // Several buckets on one registry share the metric families.
        let metrics = BucketMetrics::new(&Registry::new()).unwrap();
        cfg.build_with_metrics("t", &metrics).unwrap();
        cfg.build_with_metrics("t", &metrics).unwrap();
    }

    #[test]
    fn filesystem_buckets_know_their_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: /tenant/a/\n",
            dir.path().display()
        );
        let bucket = BucketConfig::parse(&yaml)
            .unwrap()
            .build("t", &Registry::new())
            .unwrap();
        assert_eq!(bucket.local_dir(), Some(root.join("tenant/a").as_path()));
        let s3 = BucketConfig::parse(
            "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9\n  insecure: true\n",
        )
        .unwrap()
        .build("t", &Registry::new())
        .unwrap();
        assert_eq!(s3.local_dir(), None);
    }
}
