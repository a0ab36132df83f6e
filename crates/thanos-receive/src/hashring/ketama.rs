//! The `ketama` algorithm: consistent hashing with precomputed, AZ-balanced replica lists.
//!
//! Every endpoint `i` (file order) owns `sections_per_node` ring sections whose positions
//! are `xxhash64("<address>:<k>")` for k = 1..=sections_per_node. Sections are sorted by
//! position. For each section the replica list is precomputed by walking clockwise from
//! it and collecting distinct endpoints until `replication_factor` are found, skipping an
//! endpoint whose availability zone already holds more replicas than the least-populated
//! zone. A series with hash `h` uses the first section with position ≥ `h` (wrapping to
//! the first section), and replica n is that section's n-th endpoint.
//!
//! Thanos never terminates when the zone rule cannot be satisfied (for example zones of
//! 3 and 1 endpoints with replication factor 4: once the small zone is used up, every
//! remaining endpoint is skipped forever). Here the least-populated zone is taken among
//! the zones that still have unpicked endpoints. Whenever Thanos's walk makes progress
//! both rules accept exactly the same endpoint, so assignments are identical on every
//! configuration Thanos can build; the configurations it hangs on get a best-effort zone
//! spread instead of a deadlock.

use std::collections::HashMap;

use thanos_model::Labels;
use xxhash_rust::xxh64::xxh64;

use super::config::{Endpoint, RingError};
use super::{Hashring, HashringError};

/// Ring sections per endpoint used by Thanos (`SectionsPerNode`).
pub const SECTIONS_PER_NODE: usize = 1000;

/// A ketama hashring for a fixed replication factor.
#[derive(Debug, Clone)]
pub struct KetamaHashring {
    endpoints: Vec<Endpoint>,
    /// Section positions, ascending.
    positions: Vec<u64>,
    /// `replication_factor` endpoint indices per section, flattened.
    replicas: Vec<u32>,
    replication_factor: usize,
}

impl KetamaHashring {
    /// Builds the ring with [`SECTIONS_PER_NODE`] sections per endpoint.
    ///
    /// CPU-bound: it hashes and sorts `endpoints × 1000` sections and walks the ring once
    /// per section (about half a second for 100 endpoints in a debug build), so async
    /// callers should build rings on a blocking thread.
    pub fn new(endpoints: Vec<Endpoint>, replication_factor: u64) -> Result<Self, RingError> {
        Self::with_sections_per_node(endpoints, SECTIONS_PER_NODE, replication_factor)
    }

    /// Builds the ring with a custom number of sections per endpoint (Thanos's unit tests
    /// use 10). Fails when there are fewer endpoints than `replication_factor`.
    pub fn with_sections_per_node(
        endpoints: Vec<Endpoint>,
        sections_per_node: usize,
        replication_factor: u64,
    ) -> Result<Self, RingError> {
        if replication_factor == 0 {
            return Err(RingError::ZeroReplicationFactor);
        }
        if sections_per_node == 0 {
            return Err(RingError::ZeroSectionsPerNode);
        }
        let too_few = || RingError::TooFewEndpoints {
            endpoints: endpoints.len(),
            replication_factor,
        };
        let rf = usize::try_from(replication_factor).map_err(|_| too_few())?;
        if endpoints.len() < rf || u32::try_from(endpoints.len()).is_err() {
            return Err(too_few());
        }

        let mut sections: Vec<(u64, u32)> = Vec::with_capacity(endpoints.len() * sections_per_node);
        for (index, endpoint) in (0u32..).zip(&endpoints) {
            for k in 1..=sections_per_node {
                let key = format!("{}:{k}", endpoint.address);
                sections.push((xxh64(key.as_bytes(), 0), index));
            }
        }
        sections.sort_by_key(|&(position, _)| position);

        let zones = Zones::new(&endpoints);
        let mut replicas = Vec::with_capacity(sections.len() * rf);
        let mut picked: Vec<u32> = Vec::with_capacity(rf);
        let mut zone_count = vec![0usize; zones.sizes.len()];
        for start in 0..sections.len() {
            picked.clear();
            zone_count.fill(0);
            let mut at = start;
            while picked.len() < rf {
                let candidate = sections[at].1;
                at = (at + 1) % sections.len();
                if picked.contains(&candidate) {
                    continue;
                }
                let zone = zones.of_endpoint[candidate as usize];
                if zone_count[zone] > zones.least_populated_open(&zone_count) {
                    continue;
                }
                picked.push(candidate);
                zone_count[zone] += 1;
            }
            replicas.extend_from_slice(&picked);
        }

        Ok(Self {
            endpoints,
            positions: sections.into_iter().map(|(position, _)| position).collect(),
            replicas,
            replication_factor: rf,
        })
    }

    /// The replication factor the replica lists were computed for.
    pub fn replication_factor(&self) -> u64 {
        self.replication_factor as u64
    }

    /// Replica `n` for a precomputed series hash
    /// ([`Labels::hash_with_prefix`] of the tenant).
    pub fn get_n_by_hash(&self, hash: u64, n: u64) -> Result<&Endpoint, HashringError> {
        let have = self.endpoints.len() as u64;
        if n >= have {
            return Err(HashringError::InsufficientNodes { have, want: n + 1 });
        }
        let replica = usize::try_from(n)
            .ok()
            .filter(|&r| r < self.replication_factor)
            .ok_or(HashringError::ReplicaOutOfRange {
                replica: n,
                replication_factor: self.replication_factor as u64,
            })?;
        let mut section = self.positions.partition_point(|&p| p < hash);
        if section == self.positions.len() {
            section = 0;
        }
        let endpoint = self.replicas[section * self.replication_factor + replica];
        Ok(&self.endpoints[endpoint as usize])
    }
}

impl Hashring for KetamaHashring {
    fn get_n(&self, tenant: &str, labels: &Labels, n: u64) -> Result<&Endpoint, HashringError> {
        self.get_n_by_hash(labels.hash_with_prefix(tenant), n)
    }

    fn nodes(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

/// Availability zones of a ring (endpoints without `az` form the zone `""`).
struct Zones {
    /// Zone index of every endpoint.
    of_endpoint: Vec<usize>,
    /// Number of endpoints per zone.
    sizes: Vec<usize>,
}

impl Zones {
    fn new(endpoints: &[Endpoint]) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut sizes = Vec::new();
        let of_endpoint = endpoints
            .iter()
            .map(|e| {
                let zone = *index.entry(e.az.as_str()).or_insert_with(|| {
                    sizes.push(0);
                    sizes.len() - 1
                });
                sizes[zone] += 1;
                zone
            })
            .collect();
        Self { of_endpoint, sizes }
    }

    /// Replicas held by the least-populated zone that still has unpicked endpoints. Only
    /// called for a candidate that is unpicked, so at least one zone qualifies.
    fn least_populated_open(&self, count: &[usize]) -> usize {
        count
            .iter()
            .zip(&self.sizes)
            .filter(|(c, size)| c < size)
            .map(|(c, _)| *c)
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_errors() {
        let eps = |n: usize| {
            (0..n)
                .map(|i| Endpoint::new(format!("n{i}:1")))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            KetamaHashring::new(eps(2), 3).err(),
            Some(RingError::TooFewEndpoints {
                endpoints: 2,
                replication_factor: 3
            })
        );
        assert_eq!(
            KetamaHashring::new(eps(2), 0).err(),
            Some(RingError::ZeroReplicationFactor)
        );
        assert_eq!(
            KetamaHashring::with_sections_per_node(eps(2), 0, 1).err(),
            Some(RingError::ZeroSectionsPerNode)
        );
    }

    #[test]
    fn replica_index_bounds() {
        let eps = (0..4).map(|i| Endpoint::new(format!("n{i}:1"))).collect();
        let ring =
            KetamaHashring::with_sections_per_node(eps, 10, 2).unwrap_or_else(|e| panic!("{e}"));
        assert!(ring.get_n_by_hash(42, 1).is_ok());
        assert_eq!(
            ring.get_n_by_hash(42, 2).err(),
            Some(HashringError::ReplicaOutOfRange {
                replica: 2,
                replication_factor: 2
            })
        );
        assert_eq!(
            ring.get_n_by_hash(42, 4).err(),
            Some(HashringError::InsufficientNodes { have: 4, want: 5 })
        );
    }

    #[test]
    fn lookup_wraps_past_the_last_section() {
        let eps = (0..3).map(|i| Endpoint::new(format!("n{i}:1"))).collect();
        let ring =
            KetamaHashring::with_sections_per_node(eps, 10, 1).unwrap_or_else(|e| panic!("{e}"));
        let last = *ring
            .positions
            .last()
            .unwrap_or_else(|| panic!("no sections"));
        let first_owner = ring.replicas[0];
        if last < u64::MAX {
            let e = ring
                .get_n_by_hash(last + 1, 0)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(e, &ring.endpoints[first_owner as usize]);
        }
        let e = ring
            .get_n_by_hash(ring.positions[0], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e, &ring.endpoints[first_owner as usize]);
    }
}
