//! The hashring configuration file (`--receive.hashrings-file` / `--receive.hashrings`).
//!
//! Top level is a JSON array of hashring objects; see [`HashringConfig`] for the keys.
//! Unknown keys are ignored and `null` stands for "absent", as with Go's `encoding/json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::glob::{GlobError, GlobPattern};

/// Port of the Cap'n Proto replication listener assumed when an endpoint gives none.
pub const DEFAULT_CAPNPROTO_PORT: u16 = 19391;

/// Errors loading or validating a hashring configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The hashrings file could not be read.
    #[error("reading hashrings file {path}: {source}")]
    Read {
        /// File that was read.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// Not valid JSON, or JSON of the wrong shape.
    #[error("configuration file is not parsable: {0}")]
    Parse(#[source] serde_json::Error),
    /// Empty content, `null` or `[]`.
    #[error("configuration file is empty")]
    Empty,
    /// An error in a file, with its path.
    #[error("hashrings file {path}: {source}")]
    InFile {
        /// The hashrings file.
        path: PathBuf,
        /// What was wrong with its content.
        source: Box<ConfigError>,
    },
    /// The replication factor is 0.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    /// One hashring of the file is invalid.
    #[error("hashring {hashring}: {source}")]
    Hashring {
        /// Hashring name, or `#<index>` (0-based position in the file) when unnamed.
        hashring: String,
        /// What is wrong with it.
        source: RingError,
    },
}

/// Why a single hashring cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RingError {
    /// Fewer endpoints than replicas per series (Thanos's ketama refuses this; its
    /// hashmod accepts it and then fails every write with "insufficient nodes").
    #[error(
        "{endpoints} endpoint(s) cannot hold {replication_factor} replicas of a series: \
         the replication factor must not exceed the number of endpoints"
    )]
    TooFewEndpoints {
        /// Endpoints in the hashring.
        endpoints: usize,
        /// Configured replication factor.
        replication_factor: u64,
    },
    /// The replication factor is 0.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    /// Ketama with zero sections per node.
    #[error("ketama needs at least one section per node")]
    ZeroSectionsPerNode,
    /// An endpoint has an availability zone but the algorithm is hashmod.
    #[error(
        "hashmod algorithm does not support availability zones (endpoint {address} has az \
         {az:?}); use ketama or remove the az fields"
    )]
    AzWithHashmod {
        /// Endpoint address.
        address: String,
        /// Its availability zone.
        az: String,
    },
    /// Shuffle sharding configured on a hashmod hashring.
    #[error(
        "hashmod algorithm does not support shuffle sharding; use ketama or remove shuffle_sharding_config"
    )]
    ShuffleShardingWithHashmod,
    /// A shard size larger than the hashring.
    #[error("shard size {shard_size} is larger than the number of endpoints ({endpoints})")]
    ShardSizeTooLarge {
        /// Configured shard size.
        shard_size: u64,
        /// Endpoints in the hashring.
        endpoints: usize,
    },
    /// Shuffle sharding is configured (shard size > 0) and valid, but this receiver does not
    /// implement it: routing without it would silently place tenants on other nodes than
    /// Thanos does.
    #[error("shuffle sharding (shard_size {shard_size}) is not supported by this receiver")]
    ShuffleShardingUnsupported {
        /// The effective shard size that activates it.
        shard_size: u64,
    },
    /// A tenant glob pattern does not parse.
    #[error(transparent)]
    BadTenantPattern(#[from] GlobError),
}

/// Hashing algorithm of a hashring (`--receive.hashrings-algorithm`, per-hashring
/// `algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// `hashmod`: replica n of a series goes to `endpoints[(hash + n) mod len]`.
    #[default]
    Hashmod,
    /// `ketama`: consistent hashing with [`SECTIONS_PER_NODE`](super::SECTIONS_PER_NODE)
    /// ring sections per endpoint.
    Ketama,
}

impl Algorithm {
    /// The name used in flags and in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hashmod => "hashmod",
            Algorithm::Ketama => "ketama",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is neither `hashmod` nor `ketama`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown hashring algorithm {0:?}: expected hashmod or ketama")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hashmod" => Ok(Algorithm::Hashmod),
            "ketama" => Ok(Algorithm::Ketama),
            other => Err(UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// How the `tenants` of a hashring are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantMatcherType {
    /// Tenant names are compared literally (also chosen by `""`).
    #[default]
    #[serde(alias = "")]
    Exact,
    /// Tenant entries are shell-style patterns (see [`GlobPattern`]).
    Glob,
}

/// One member of a hashring.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// gRPC address (`host:port`) used for forwarding and as the node's identity.
    pub address: String,
    /// Cap'n Proto replication address; defaults to the address's host with port 19391.
    pub capnproto_address: String,
    /// Availability zone (ketama only); empty when not set.
    pub az: String,
}

impl Endpoint {
    /// An endpoint without availability zone, with the default Cap'n Proto address.
    pub fn new(address: impl Into<String>) -> Self {
        let address = address.into();
        let capnproto_address = default_capnproto_address(&address);
        Self {
            address,
            capnproto_address,
            az: String::new(),
        }
    }

    /// Sets the availability zone.
    pub fn with_az(mut self, az: impl Into<String>) -> Self {
        self.az = az.into();
        self
    }

    /// Whether `addr` names this endpoint (its address or its Cap'n Proto address), as
    /// used to recognise `--receive.local-endpoint`.
    pub fn has_address(&self, addr: &str) -> bool {
        self.address == addr
            || (!self.capnproto_address.is_empty() && self.capnproto_address == addr)
    }
}

/// `<host>:19391`, where host is everything before the first `:` (as Thanos does), or the
/// bracketed part of an `[ipv6]:port` address.
fn default_capnproto_address(address: &str) -> String {
    let host = match address.strip_prefix('[').and_then(|rest| rest.find(']')) {
        Some(end) => &address[..end + 2],
        None => address.split(':').next().unwrap_or(address),
    };
    format!("{host}:{DEFAULT_CAPNPROTO_PORT}")
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            #[serde(default, deserialize_with = "nullable")]
            address: String,
            #[serde(default, deserialize_with = "nullable")]
            capnproto_address: String,
            #[serde(default, deserialize_with = "nullable")]
            az: String,
        }

        struct EndpointVisitor;

        impl<'de> Visitor<'de> for EndpointVisitor {
            type Value = Endpoint;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an endpoint address string or an object with \"address\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
                if v.is_empty() {
                    return Err(E::custom("endpoint address must be set"));
                }
                Ok(Endpoint::new(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Endpoint, A::Error> {
                let o = Object::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if o.address.is_empty() {
                    return Err(de::Error::custom("endpoint address must be set"));
                }
                let mut endpoint = Endpoint::new(o.address).with_az(o.az);
                if !o.capnproto_address.is_empty() {
                    endpoint.capnproto_address = o.capnproto_address;
                }
                Ok(endpoint)
            }
        }

        deserializer.deserialize_any(EndpointVisitor)
    }
}

/// A per-tenant shard size override inside [`ShuffleShardingConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ShardSizeOverride {
    /// Shard size for the matching tenants.
    #[serde(default, deserialize_with = "nullable")]
    pub shard_size: u64,
    /// Tenants (names or patterns) this override applies to.
    #[serde(default, deserialize_with = "nullable")]
    pub tenants: Vec<String>,
    /// How `tenants` are matched.
    #[serde(default, deserialize_with = "nullable")]
    pub tenant_matcher_type: TenantMatcherType,
}

/// `shuffle_sharding_config` of a hashring (ketama only). Parsed and validated; routing
/// with an active shard size is refused with [`RingError::ShuffleShardingUnsupported`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ShuffleShardingConfig {
    /// Nodes per tenant; 0 disables shuffle sharding.
    #[serde(default, deserialize_with = "nullable")]
    pub shard_size: u64,
    /// Size of the LRU of computed sub-rings (0 = Thanos's default of 100).
    #[serde(default, deserialize_with = "nullable")]
    pub cache_size: u64,
    /// Pick nodes regardless of availability zones.
    #[serde(default, deserialize_with = "nullable")]
    pub zone_awareness_disabled: bool,
    /// Per-tenant shard sizes, first match wins.
    #[serde(default, deserialize_with = "nullable")]
    pub overrides: Vec<ShardSizeOverride>,
}

impl ShuffleShardingConfig {
    /// Whether any tenant would be shuffle-sharded.
    pub fn is_active(&self) -> bool {
        self.shard_size > 0 || self.overrides.iter().any(|o| o.shard_size > 0)
    }

    /// Checks the configuration against the hashring it belongs to.
    pub(crate) fn validate(&self, algorithm: Algorithm, endpoints: usize) -> Result<(), RingError> {
        for o in &self.overrides {
            if o.tenant_matcher_type == TenantMatcherType::Glob {
                for t in &o.tenants {
                    GlobPattern::new(t)?;
                }
            }
        }
        if !self.is_active() {
            return Ok(());
        }
        if algorithm != Algorithm::Ketama {
            return Err(RingError::ShuffleShardingWithHashmod);
        }
        let sizes =
            std::iter::once(self.shard_size).chain(self.overrides.iter().map(|o| o.shard_size));
        for shard_size in sizes {
            if usize::try_from(shard_size).map_or(true, |s| s > endpoints) {
                return Err(RingError::ShardSizeTooLarge {
                    shard_size,
                    endpoints,
                });
            }
        }
        let shard_size = if self.shard_size > 0 {
            self.shard_size
        } else {
            self.overrides
                .iter()
                .map(|o| o.shard_size)
                .max()
                .unwrap_or_default()
        };
        Err(RingError::ShuffleShardingUnsupported { shard_size })
    }
}

/// One hashring of the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct HashringConfig {
    /// Name (`hashring` key), used in metrics and errors.
    #[serde(default, rename = "hashring", deserialize_with = "nullable")]
    pub name: String,
    /// Tenants served by this hashring; empty means "every tenant" (default hashring).
    #[serde(default, deserialize_with = "nullable")]
    pub tenants: Vec<String>,
    /// How `tenants` are matched (`exact` or `glob`).
    #[serde(default, deserialize_with = "nullable")]
    pub tenant_matcher_type: TenantMatcherType,
    /// Members; strings (`"host:port"`) or objects (`address`, `capnproto_address`, `az`).
    #[serde(default, deserialize_with = "nullable")]
    pub endpoints: Vec<Endpoint>,
    /// Algorithm as written; empty means the `--receive.hashrings-algorithm` default. See
    /// [`HashringConfig::effective_algorithm`].
    #[serde(default, deserialize_with = "nullable")]
    pub algorithm: String,
    /// Extra external labels for the listed (exact-name) tenants.
    #[serde(default, deserialize_with = "nullable")]
    pub external_labels: BTreeMap<String, String>,
    /// Shuffle sharding settings (ketama only).
    #[serde(default, deserialize_with = "nullable")]
    pub shuffle_sharding_config: ShuffleShardingConfig,
}

impl HashringConfig {
    /// The algorithm this hashring uses: its own `algorithm`, else `default`. An
    /// unrecognised name falls back to hashmod with a warning, as Thanos does.
    pub fn effective_algorithm(&self, default: Algorithm) -> Algorithm {
        if self.algorithm.is_empty() {
            return default;
        }
        self.algorithm
            .parse()
            .unwrap_or_else(|e: UnknownAlgorithm| {
                tracing::warn!(hashring = %self.name, error = %e, "falling back to hashmod");
                Algorithm::Hashmod
            })
    }
}

/// A parsed hashrings file with the value of `thanos_receive_config_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The hashrings, in file order.
    pub hashrings: Vec<HashringConfig>,
    /// [`config_hash`] of the raw content.
    pub hash: f64,
}

impl LoadedConfig {
    /// Parses raw content (file or `--receive.hashrings`).
    pub fn from_bytes(content: &[u8]) -> Result<Self, ConfigError> {
        Ok(Self {
            hashrings: parse_config(content)?,
            hash: config_hash(content),
        })
    }

    /// Reads and parses a hashrings file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let content = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&content).map_err(|source| ConfigError::InFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

/// Parses the hashring JSON. Empty (or whitespace-only) content, `null` and `[]` are
/// rejected as [`ConfigError::Empty`]; anything that is not an array of hashring objects
/// as [`ConfigError::Parse`].
pub fn parse_config(content: &[u8]) -> Result<Vec<HashringConfig>, ConfigError> {
    if content.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::Empty);
    }
    let hashrings: Option<Vec<HashringConfig>> =
        serde_json::from_slice(content).map_err(ConfigError::Parse)?;
    match hashrings {
        Some(h) if !h.is_empty() => Ok(h),
        _ => Err(ConfigError::Empty),
    }
}

/// The `thanos_receive_config_hash` value: the first 48 bits (6 bytes) of the SHA-256 of
/// the raw content, read as a little-endian integer (48 bits fit a float64 mantissa).
pub fn config_hash(content: &[u8]) -> f64 {
    let sum = Sha256::digest(content);
    let mut bytes = [0u8; 8];
    bytes[..6].copy_from_slice(&sum[..6]);
    u64::from_le_bytes(bytes) as f64
}

/// Deserializes `null` as the type's default, as Go's `encoding/json` leaves the field
/// untouched on `null`.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_capnproto_defaults() {
        assert_eq!(
            Endpoint::new("node-1:10901").capnproto_address,
            "node-1:19391"
        );
        assert_eq!(Endpoint::new("node-1").capnproto_address, "node-1:19391");
        assert_eq!(
            Endpoint::new("[::1]:10901").capnproto_address,
            "[::1]:19391"
        );
        assert_eq!(
            Endpoint::new("10.0.0.1:10901").capnproto_address,
            "10.0.0.1:19391"
        );
    }

    #[test]
    fn has_address_matches_either_address() {
        let e = Endpoint::new("a:1");
        assert!(e.has_address("a:1"));
        assert!(e.has_address("a:19391"));
        assert!(!e.has_address("b:1"));
        let no_capnp = Endpoint {
            capnproto_address: String::new(),
            ..Endpoint::new("a:1")
        };
        assert!(!no_capnp.has_address(""));
    }

    #[test]
    fn algorithm_parsing_and_fallback() {
        assert_eq!("ketama".parse::<Algorithm>(), Ok(Algorithm::Ketama));
        assert_eq!("hashmod".parse::<Algorithm>(), Ok(Algorithm::Hashmod));
        assert!("Ketama".parse::<Algorithm>().is_err());
        let mut h = HashringConfig::default();
        assert_eq!(h.effective_algorithm(Algorithm::Ketama), Algorithm::Ketama);
        h.algorithm = "ketama".into();
        assert_eq!(h.effective_algorithm(Algorithm::Hashmod), Algorithm::Ketama);
        h.algorithm = "rendezvous".into();
        assert_eq!(h.effective_algorithm(Algorithm::Ketama), Algorithm::Hashmod);
    }

    #[test]
    fn config_hash_is_first_48_bits_of_sha256_little_endian() {
        // SHA-256("") = e3b0c44298fc1c14...
        let expected = u64::from_le_bytes([0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0, 0]) as f64;
        assert_eq!(config_hash(b""), expected);
        assert!(config_hash(b"[]") < 2f64.powi(48));
        assert_ne!(config_hash(b"[{}]"), config_hash(b"[{} ]"));
    }
}
