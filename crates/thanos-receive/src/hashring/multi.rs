//! Routing tenants to the hashrings of a configuration file (Thanos `multiHashring`).

use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

use thanos_model::Labels;

use super::config::{
    Algorithm, ConfigError, Endpoint, HashringConfig, RingError, TenantMatcherType,
};
use super::glob::GlobPattern;
use super::hashmod::HashmodHashring;
use super::ketama::KetamaHashring;
use super::{Hashring, HashringError};

/// Tenants remembered in the tenant → hashring cache. Thanos's cache is unbounded; past
/// this many distinct tenants, new tenants are matched on every call instead of growing
/// memory without limit.
const MAX_CACHED_TENANTS: usize = 100_000;

/// Which tenants a hashring serves.
#[derive(Debug)]
enum TenantSet {
    /// No `tenants`: the default hashring, matching everyone.
    All,
    Exact(HashSet<String>),
    Glob(Vec<GlobPattern>),
}

impl TenantSet {
    fn new(config: &HashringConfig) -> Result<Self, RingError> {
        if config.tenants.is_empty() {
            return Ok(TenantSet::All);
        }
        Ok(match config.tenant_matcher_type {
            TenantMatcherType::Exact => TenantSet::Exact(config.tenants.iter().cloned().collect()),
            TenantMatcherType::Glob => TenantSet::Glob(
                config
                    .tenants
                    .iter()
                    .map(|t| GlobPattern::new(t))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn matches(&self, tenant: &str) -> bool {
        match self {
            TenantSet::All => true,
            TenantSet::Exact(set) => set.contains(tenant),
            TenantSet::Glob(patterns) => patterns.iter().any(|p| p.matches(tenant)),
        }
    }
}

#[derive(Debug)]
enum Ring {
    Hashmod(HashmodHashring),
    Ketama(KetamaHashring),
}

impl Ring {
    fn as_hashring(&self) -> &dyn Hashring {
        match self {
            Ring::Hashmod(r) => r,
            Ring::Ketama(r) => r,
        }
    }
}

#[derive(Debug)]
struct Entry {
    name: String,
    algorithm: Algorithm,
    tenants: TenantSet,
    ring: Ring,
}

/// All hashrings of a configuration; a tenant is served by the first hashring (in file
/// order) whose tenants match it, or that lists no tenants. Matches are cached per tenant.
#[derive(Debug)]
pub struct MultiHashring {
    entries: Vec<Entry>,
    nodes: Vec<Endpoint>,
    replication_factor: u64,
    cache: RwLock<HashMap<String, usize>>,
}

impl MultiHashring {
    /// Builds every hashring of `configs` for `replication_factor`, with
    /// `default_algorithm` for hashrings that name none.
    ///
    /// Fails (naming the hashring) on: a replication factor of 0, fewer endpoints than the
    /// replication factor, availability zones or shuffle sharding with hashmod, malformed
    /// tenant patterns, shard sizes larger than the ring, and active shuffle sharding
    /// (not supported). An empty `configs` is [`ConfigError::Empty`].
    pub fn new(
        configs: &[HashringConfig],
        default_algorithm: Algorithm,
        replication_factor: u64,
    ) -> Result<Self, ConfigError> {
        if replication_factor == 0 {
            return Err(ConfigError::ZeroReplicationFactor);
        }
        if configs.is_empty() {
            return Err(ConfigError::Empty);
        }
        let mut entries = Vec::with_capacity(configs.len());
        let mut nodes = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let entry =
                build_entry(config, default_algorithm, replication_factor).map_err(|source| {
                    ConfigError::Hashring {
                        hashring: if config.name.is_empty() {
                            format!("#{index}")
                        } else {
                            config.name.clone()
                        },
                        source,
                    }
                })?;
            nodes.extend_from_slice(entry.ring.as_hashring().nodes());
            entries.push(entry);
        }
        nodes.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(Self {
            entries,
            nodes,
            replication_factor,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The replication factor the hashrings were built for.
    pub fn replication_factor(&self) -> u64 {
        self.replication_factor
    }

    /// Number of hashrings.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false: a `MultiHashring` holds at least one hashring.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Name and algorithm of the hashring serving `tenant` (first match in file order).
    pub fn hashring_for(&self, tenant: &str) -> Result<(&str, Algorithm), HashringError> {
        let entry = &self.entries[self.entry_index(tenant)?];
        Ok((&entry.name, entry.algorithm))
    }

    fn entry_index(&self, tenant: &str) -> Result<usize, HashringError> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .copied();
        if let Some(index) = cached {
            return Ok(index);
        }
        let index = self
            .entries
            .iter()
            .position(|e| e.tenants.matches(tenant))
            .ok_or_else(|| HashringError::NoMatchingHashring {
                tenant: tenant.to_owned(),
            })?;
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < MAX_CACHED_TENANTS {
            cache.insert(tenant.to_owned(), index);
        }
        Ok(index)
    }
}

fn build_entry(
    config: &HashringConfig,
    default_algorithm: Algorithm,
    replication_factor: u64,
) -> Result<Entry, RingError> {
    let algorithm = config.effective_algorithm(default_algorithm);
    let endpoints = config.endpoints.clone();
    let ring = match algorithm {
        Algorithm::Hashmod => Ring::Hashmod(HashmodHashring::new(endpoints, replication_factor)?),
        Algorithm::Ketama => Ring::Ketama(KetamaHashring::new(endpoints, replication_factor)?),
    };
    config
        .shuffle_sharding_config
        .validate(algorithm, config.endpoints.len())?;
    Ok(Entry {
        name: config.name.clone(),
        algorithm,
        tenants: TenantSet::new(config)?,
        ring,
    })
}

impl Hashring for MultiHashring {
    fn get_n(&self, tenant: &str, labels: &Labels, n: u64) -> Result<&Endpoint, HashringError> {
        let index = self.entry_index(tenant)?;
        self.entries[index]
            .ring
            .as_hashring()
            .get_n(tenant, labels, n)
    }

    /// Endpoints of all hashrings sorted by address; an endpoint listed in several
    /// hashrings appears several times.
    fn nodes(&self) -> &[Endpoint] {
        &self.nodes
    }
}
