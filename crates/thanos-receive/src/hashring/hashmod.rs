//! The `hashmod` algorithm: endpoints sorted by address, replica n of a series on
//! `endpoints[(hash + n) mod len]`.

use thanos_model::Labels;

use super::config::{Endpoint, RingError};
use super::{Hashring, HashringError};

/// A hashmod hashring (Thanos `simpleHashring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashmodHashring {
    endpoints: Vec<Endpoint>,
}

impl HashmodHashring {
    /// Builds the ring. Endpoints are sorted by address; availability zones are rejected
    /// ([`RingError::AzWithHashmod`]), and so is a ring with fewer endpoints than
    /// `replication_factor` ([`RingError::TooFewEndpoints`]), which Thanos would accept
    /// and then fail every write on.
    pub fn new(mut endpoints: Vec<Endpoint>, replication_factor: u64) -> Result<Self, RingError> {
        if replication_factor == 0 {
            return Err(RingError::ZeroReplicationFactor);
        }
        if let Some(e) = endpoints.iter().find(|e| !e.az.is_empty()) {
            return Err(RingError::AzWithHashmod {
                address: e.address.clone(),
                az: e.az.clone(),
            });
        }
        if (endpoints.len() as u64) < replication_factor {
            return Err(RingError::TooFewEndpoints {
                endpoints: endpoints.len(),
                replication_factor,
            });
        }
        endpoints.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(Self { endpoints })
    }

    /// Replica `n` for a precomputed series hash
    /// ([`Labels::hash_with_prefix`] of the tenant).
    pub fn get_n_by_hash(&self, hash: u64, n: u64) -> Result<&Endpoint, HashringError> {
        let len = self.endpoints.len() as u64;
        if n >= len {
            return Err(HashringError::InsufficientNodes {
                have: len,
                want: n + 1,
            });
        }
        // `n < len` and `len` fits usize, so the index does too.
        let index = (hash.wrapping_add(n) % len) as usize;
        Ok(&self.endpoints[index])
    }
}

impl Hashring for HashmodHashring {
    fn get_n(&self, tenant: &str, labels: &Labels, n: u64) -> Result<&Endpoint, HashringError> {
        self.get_n_by_hash(labels.hash_with_prefix(tenant), n)
    }

    fn nodes(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(addrs: &[&str], rf: u64) -> Result<HashmodHashring, RingError> {
        HashmodHashring::new(addrs.iter().map(|a| Endpoint::new(*a)).collect(), rf)
    }

    #[test]
    fn sorts_endpoints_and_wraps() {
        let r = ring(&["c:1", "a:1", "b:1"], 1).unwrap_or_else(|e| panic!("{e}"));
        let addrs: Vec<&str> = r.nodes().iter().map(|e| e.address.as_str()).collect();
        assert_eq!(addrs, ["a:1", "b:1", "c:1"]);
        let pick = |h, n| r.get_n_by_hash(h, n).map(|e| e.address.as_str());
        assert_eq!(pick(0, 0), Ok("a:1"));
        assert_eq!(pick(4, 0), Ok("b:1"));
        assert_eq!(pick(4, 2), Ok("a:1"));
        // (u64::MAX + 1) wraps to 0 exactly as Go's uint64 arithmetic does.
        assert_eq!(pick(u64::MAX, 1), Ok("a:1"));
        assert_eq!(pick(u64::MAX, 0), Ok("a:1"), "u64::MAX mod 3 == 0");
        assert_eq!(
            pick(1, 3),
            Err(HashringError::InsufficientNodes { have: 3, want: 4 })
        );
    }

    #[test]
    fn rejects_az_and_small_rings() {
        let with_az = HashmodHashring::new(vec![Endpoint::new("a:1").with_az("z1")], 1);
        assert!(matches!(with_az, Err(RingError::AzWithHashmod { .. })));
        assert_eq!(
            ring(&["a:1", "b:1"], 3),
            Err(RingError::TooFewEndpoints {
                endpoints: 2,
                replication_factor: 3
            })
        );
        assert_eq!(
            ring(&[], 1),
            Err(RingError::TooFewEndpoints {
                endpoints: 0,
                replication_factor: 1
            })
        );
        assert_eq!(ring(&["a:1"], 0), Err(RingError::ZeroReplicationFactor));
    }
}
