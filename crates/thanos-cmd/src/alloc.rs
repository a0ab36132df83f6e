//! The process allocator: mimalloc, with a purge delay chosen per component.
//!
//! The glibc allocator spent about 40% of receive's ingest CPU and 13–30% of the
//! querier's in malloc and free. mimalloc 3's default purge delay (a second) made
//! receive hold about a third more RSS per active series than glibc; with a 10 ms delay
//! (mimalloc 2's default) it holds about 10% more, so receive uses 10 ms.
//!
//! The store gateway and the querier free and reallocate their working set request
//! after request; whenever it was purged in between, the next request faulted every page
//! back in (zeroed by the kernel). With a 10 ms delay a 6,600-series
//! `histogram_quantile` took 67–83 ms instead of 52 ms; even the default second left 8%
//! of the querier's CPU in page clearing on a 20,000-series instant query, and the
//! PromQL benchmark (`benches/promql`) went from 0.551 to 0.497 of Prometheus's latency
//! with a 10 s delay. So they purge memory left unused for 10 s. `MIMALLOC_PURGE_DELAY`
//! in the environment still takes precedence.

use libmimalloc_sys as sys;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (milliseconds) in mimalloc 3.3's `mi_option_e`; libmimalloc-sys
/// is pinned to the release bundling it, and a test checks the default behind the index.
const PURGE_DELAY: sys::mi_option_t = 15;

/// Purge delay of receive, whose memory is its active series (see the module docs).
const INGEST_PURGE_DELAY_MS: std::ffi::c_long = 10;
/// Purge delay of the store gateway and the querier, which reuse their per-request
/// working set (see the module docs).
const QUERY_PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Applies the allocator settings of a component (`ingest`: receive, otherwise a
/// component answering queries only); called by [`crate::main`] once the command line
/// is parsed.
pub(crate) fn configure(ingest: bool) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let delay = if ingest {
            INGEST_PURGE_DELAY_MS
        } else {
            QUERY_PURGE_DELAY_MS
        };
        // SAFETY: mi_option_set only stores a value in mimalloc's option table.
        unsafe { sys::mi_option_set(PURGE_DELAY, delay) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_index_names_the_purge_delay() {
        // mimalloc 3.3's default purge delay is 1000 ms; no neighbouring option defaults
        // to 1000, so a shifted enum fails here.
        // SAFETY: mi_option_get only reads mimalloc's option table.
        let delay = unsafe { sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(
            delay, 1000,
            "mimalloc's default purge delay (run without MIMALLOC_PURGE_DELAY set)"
        );
    }
}
