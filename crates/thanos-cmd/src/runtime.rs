//! The async runtimes of the components.

use anyhow::Context as _;

/// The runtime of `query` and `store`: a multi-threaded tokio runtime with one worker per
/// two cores (at least one).
///
/// Both components do their CPU-heavy work (chunk decoding, PromQL evaluation, large JSON
/// encodings, series of many blocks) on tokio's blocking pool, so the workers mostly move
/// bytes between sockets and tasks. With a worker per core, every task wake-up while a
/// worker sleeps woke another worker that found nothing to do: at one query at a time the
/// querier switched context 6.9 times per 200-series request instead of 2.1, and the
/// benchmark's small queries answered 7% slower. `TOKIO_WORKER_THREADS` in the environment
/// still sets the number of workers.
pub(crate) fn half_core_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(half_cores(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ));
    }
    builder.build().context("start the async runtime")
}

/// Workers for `cores` cores: half of them, at least one.
fn half_cores(cores: usize) -> usize {
    (cores / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_worker_per_two_cores_and_never_none() {
        assert_eq!(half_cores(1), 1);
        assert_eq!(half_cores(2), 1);
        assert_eq!(half_cores(3), 1);
        assert_eq!(half_cores(8), 4);
    }
}
