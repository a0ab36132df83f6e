//! The `--http.config` web configuration file (Prometheus exporter-toolkit format): TLS,
//! HTTP/2 and response headers, and basic-auth users with bcrypt password hashes.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//!   min_version: TLS12
//! http_server_config:
//!   http2: true
//!   headers:
//!     X-Frame-Options: deny
//! basic_auth_users:
//!   alice: $2y$10$...
//! ```
//!
//! Unknown keys are errors. Relative file paths are resolved against the directory of the
//! config file, as exporter-toolkit does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::tls::{ClientAuth, PemSource, ServerTlsOptions, TlsVersion};

/// Response headers exporter-toolkit lets the web config set.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTlsConfig>,
    #[serde(default)]
    http_server_config: Option<RawHttpConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsConfig {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    cert: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    client_ca: String,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    curve_preferences: Vec<String>,
    #[serde(default)]
    min_version: String,
    #[serde(default)]
    max_version: String,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    client_allowed_sans: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpConfig {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A parsed and validated web config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// TLS settings; `None` serves plain HTTP.
    pub tls: Option<ServerTlsOptions>,
    /// Whether HTTP/2 is offered (default true).
    pub http2: bool,
    /// Extra headers added to every response.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Basic-auth users and their bcrypt hashes; empty disables basic auth.
    pub basic_auth_users: BTreeMap<String, String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            tls: None,
            http2: true,
            headers: Vec::new(),
            basic_auth_users: BTreeMap::new(),
        }
    }
}

impl WebConfig {
    /// Reads and validates the file given to `--http.config`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            what: "web config",
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|message| Error::WebConfig {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses web-config YAML; relative paths are resolved against `base_dir`.
    pub fn parse(yaml: &str, base_dir: &Path) -> Result<Self, String> {
        let raw: RawWebConfig = if yaml.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_saphyr::from_str(yaml).map_err(|err| err.to_string())?
        };
        let tls = raw
            .tls_server_config
            .map(|tls| tls_options(tls, base_dir))
            .transpose()?
            .flatten();
        let http = raw.http_server_config.unwrap_or_default();
        let mut headers = Vec::new();
        for (name, value) in http.headers {
            let Some(allowed) = ALLOWED_HEADERS
                .iter()
                .find(|allowed| allowed.eq_ignore_ascii_case(&name))
            else {
                return Err(format!(
                    "header {name:?} can not be set (allowed: {})",
                    ALLOWED_HEADERS.join(", ")
                ));
            };
            let value = http::HeaderValue::from_str(&value)
                .map_err(|_| format!("invalid value for header {name}"))?;
            headers.push((http::HeaderName::from_static(lowercase(allowed)), value));
        }
        for (user, hash) in &raw.basic_auth_users {
            if user.contains(':') {
                return Err(format!("basic auth user {user:?} contains ':'"));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "password hash of user {user:?} is not a bcrypt hash"
                ));
            }
        }
        Ok(WebConfig {
            tls,
            http2: http.http2.unwrap_or(true),
            headers,
            basic_auth_users: raw.basic_auth_users,
        })
    }
}

/// `HeaderName::from_static` needs lowercase names; the allowed list is static.
fn lowercase(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

fn tls_options(raw: RawTlsConfig, base: &Path) -> Result<Option<ServerTlsOptions>, String> {
    let resolve = |file: &str| -> PathBuf {
        let path = Path::new(file);
        if path.is_absolute() {
            path.to_owned()
        } else {
            base.join(path)
        }
    };
    let source = |file: &str, inline: &str, what: &str| -> Result<Option<PemSource>, String> {
        match (file.is_empty(), inline.is_empty()) {
            (true, true) => Ok(None),
            (false, true) => Ok(Some(PemSource::File(resolve(file)))),
            (true, false) => Ok(Some(PemSource::Inline(inline.to_owned()))),
            (false, false) => Err(format!("both {what}_file and {what} are set")),
        }
    };
    let cert = source(&raw.cert_file, &raw.cert, "cert")?;
    let key = source(&raw.key_file, &raw.key, "key")?;
    let client_ca = source(&raw.client_ca_file, &raw.client_ca, "client_ca")?;
    let (cert, key) = match (cert, key) {
        (None, None) if client_ca.is_none() && raw.client_auth_type.is_empty() => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (None, _) => return Err("missing cert_file".to_owned()),
        (_, None) => return Err("missing key_file".to_owned()),
    };
    let client_auth = if raw.client_auth_type.is_empty() {
        // exporter-toolkit: a client CA without an explicit type means verified mTLS.
        if client_ca.is_some() {
            ClientAuth::RequireAndVerifyClientCert
        } else {
            ClientAuth::NoClientCert
        }
    } else {
        raw.client_auth_type.parse()?
    };
    if client_ca.is_some()
        && matches!(
            client_auth,
            ClientAuth::NoClientCert
                | ClientAuth::RequestClientCert
                | ClientAuth::RequireAnyClientCert
        )
    {
        return Err(format!(
            "client CA is set but client_auth_type {client_auth:?} does not verify client certificates"
        ));
    }
    let version = |text: &str, default: TlsVersion| -> Result<TlsVersion, String> {
        if text.is_empty() {
            Ok(default)
        } else {
            text.parse()
        }
    };
    let min_version = version(&raw.min_version, TlsVersion::Tls12)?;
    let max_version = version(&raw.max_version, TlsVersion::Tls13)?;
    if !raw.client_allowed_sans.is_empty() {
        return Err("client_allowed_sans is not supported".to_owned());
    }
    if !raw.cipher_suites.is_empty() {
        tracing::warn!(
            cipher_suites = ?raw.cipher_suites,
            "web config cipher_suites ignored: rustls chooses among its own safe suites"
        );
    }
    if !raw.curve_preferences.is_empty() {
        tracing::warn!(
            curve_preferences = ?raw.curve_preferences,
            "web config curve_preferences ignored: rustls chooses its key exchange groups"
        );
    }
    if raw.prefer_server_cipher_suites.is_some() {
        tracing::debug!("web config prefer_server_cipher_suites has no effect (as in recent Go)");
    }
    Ok(Some(ServerTlsOptions {
        cert,
        key,
        client_ca,
        client_auth,
        min_version,
        max_version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_plain_http() {
        let config = WebConfig::parse("", Path::new("/etc")).unwrap();
        assert_eq!(config, WebConfig::default());
    }

    #[test]
    fn full_config_parses() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let yaml = format!(
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /abs/server.key\n  \
             client_ca_file: ca.crt\n  min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  alice: \"{hash}\"\n"
        );
        let config = WebConfig::parse(&yaml, Path::new("/etc/thanos")).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(
            tls.cert,
            PemSource::File("/etc/thanos/tls/server.crt".into())
        );
        assert_eq!(tls.key, PemSource::File("/abs/server.key".into()));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert!(!config.http2);
        assert_eq!(config.headers[0].0.as_str(), "x-frame-options");
        assert_eq!(config.basic_auth_users["alice"], hash);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err =
            WebConfig::parse("tls_server_config:\n  cert_fil: x\n", Path::new(".")).unwrap_err();
        assert!(err.contains("cert_fil"), "{err}");
        assert!(WebConfig::parse("bogus: 1\n", Path::new(".")).is_err());
    }

    #[test]
    fn invalid_settings_are_errors() {
        for yaml in [
            "tls_server_config:\n  cert_file: a\n",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n  client_auth_type: NoClientCert\n",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n",
            "http_server_config:\n  headers:\n    X-Custom: 1\n",
            "basic_auth_users:\n  bob: plaintext\n",
        ] {
            assert!(WebConfig::parse(yaml, Path::new(".")).is_err(), "{yaml}");
        }
    }
}
