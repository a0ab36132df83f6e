//! Data parallelism for large evaluation nodes.
//!
//! Work over independent series is split into contiguous chunks, one per thread
//! (`std::thread::scope`), and the per-chunk results are concatenated in input order, so
//! the output is identical to a sequential run. Small inputs stay on the calling thread:
//! handing work to another thread costs tens of microseconds.

/// Maps `f` over `items` on up to `threads` threads (see
/// [`crate::EngineOptions::threads_for`]). Results are in input order.
pub(crate) fn map<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads.min(items.len());
    if threads < 2 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    let run = move |part: &[T]| -> Vec<R> { part.iter().map(f).collect() };
    std::thread::scope(|scope| {
        let mut parts = items.chunks(chunk);
        let first = parts.next();
        let handles: Vec<_> = parts.map(|part| scope.spawn(move || run(part))).collect();
        let mut out = first.map_or_else(Vec::new, run);
        out.reserve(items.len().saturating_sub(out.len()));
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                // A panic in a worker is a bug; re-raise it on the calling thread.
                Err(e) => std::panic::resume_unwind(e),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_input_order_with_and_without_threads() {
        let items: Vec<u64> = (0..1001).collect();
        let seq = map(&items, 1, |x| x * 1000 + x);
        let par = map(&items, 3, |x| x * 1000 + x);
        assert_eq!(seq, par);
        assert_eq!(par.len(), 1001);
        assert_eq!(par[1000], 1000 * 1000 + 1000);
        let empty: Vec<u64> = map(&[] as &[u64], 2, |x| *x);
        assert!(empty.is_empty());
    }

    #[test]
    fn uses_other_threads_for_large_work() {
        let items: Vec<u32> = (0..8).collect();
        let ids = map(&items, 2, |_| std::thread::current().id());
        let here = std::thread::current().id();
        assert_eq!(ids[0], here, "the first chunk runs on the calling thread");
        assert_ne!(ids[7], here, "the last chunk runs on a worker thread");
    }
}
