//! Float samples.

/// One float sample: a millisecond timestamp and a value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value (may be a staleness-marker NaN, see [`STALE_NAN_BITS`]).
    pub v: f64,
}

impl Sample {
    /// Creates a sample.
    pub fn new(t: i64, v: f64) -> Self {
        Self { t, v }
    }

    /// True when the value is Prometheus's staleness marker.
    pub fn is_stale(&self) -> bool {
        is_stale_nan(self.v)
    }
}

/// Bit pattern of Prometheus's staleness marker (a specific signalling NaN).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is bit-identical to the staleness marker.
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_distinct_from_plain_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(Sample::new(1, stale_nan()).is_stale());
    }
}
