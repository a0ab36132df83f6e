//! Replica deduplication (Thanos `pkg/dedup`), over decoded sample vectors.
//!
//! Series whose labels are equal once the replica labels are removed are replicas of one
//! another. Their samples are merged by one of two algorithms (components.md §5.6):
//!
//! * **penalty** (default): follow one replica and only switch to another when the
//!   followed one has a gap larger than about two scrape intervals; see [`penalty`];
//! * **chain**: the union of every replica's samples, equal timestamps collapsed; see
//!   [`chain`].
//!
//! Before merging, the chunks of each series are split into non-overlapping "fake
//! replicas" ([`split_overlapping`]), since identical label sets from several stores have
//! been glued into one series by the proxy.

use std::str::FromStr;

use thanos_model::Sample;

/// Penalty for the replica not chosen when nothing was emitted yet (ms).
const INITIAL_PENALTY_MS: i64 = 5000;

/// The deduplication algorithm (`--deduplication.func`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DedupFunc {
    /// Thanos's penalty algorithm.
    #[default]
    Penalty,
    /// Prometheus's chained merge: union of all samples.
    Chain,
}

impl FromStr for DedupFunc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "penalty" => Ok(DedupFunc::Penalty),
            "chain" => Ok(DedupFunc::Chain),
            other => Err(format!(
                "unknown deduplication function {other:?} (expected penalty or chain)"
            )),
        }
    }
}

/// Whether a function needs counter-reset adjustment when switching replicas.
pub fn needs_counter_adjustment(func: Option<&str>) -> bool {
    matches!(func, Some("rate" | "increase" | "irate" | "resets"))
}

/// Merges all replicas of one series with `func`; `counter_adjust` enables the penalty
/// algorithm's counter correction (for `rate`, `increase`, `irate`, `resets`).
pub fn merge_replicas(
    func: DedupFunc,
    replicas: Vec<Vec<Sample>>,
    counter_adjust: bool,
) -> Vec<Sample> {
    match func {
        DedupFunc::Chain => chain(&replicas),
        DedupFunc::Penalty => {
            let mut it = replicas.into_iter();
            let first = it.next().unwrap_or_default();
            it.fold(first, |acc, r| penalty(&acc, &r, counter_adjust))
        }
    }
}

/// One replica being walked by [`penalty`].
struct Cursor<'a> {
    samples: &'a [Sample],
    pos: usize,
    penalty: i64,
    adjust: f64,
}

impl<'a> Cursor<'a> {
    fn new(samples: &'a [Sample]) -> Self {
        Self {
            samples,
            pos: 0,
            penalty: 0,
            adjust: 0.0,
        }
    }

    /// Moves to the first sample at or after `t` and returns it.
    fn seek(&mut self, t: i64) -> Option<Sample> {
        while self.samples.get(self.pos).is_some_and(|s| s.t < t) {
            self.pos += 1;
        }
        self.samples.get(self.pos).copied()
    }
}

/// Merges two replicas with Thanos's penalty algorithm.
///
/// After each emitted sample at `last`, each replica looks for its next sample at
/// `last + 1 + its penalty`. The earlier candidate wins (ties go to `a`); the other
/// replica's penalty becomes twice the step just taken (5s before anything was emitted),
/// the winner's resets to 0. So the merge sticks to one replica and only switches when it
/// is missing more than about two intervals.
///
/// With `counter_adjust`, when the merge switches replicas and the new replica's value is
/// below the last emitted value, the difference is added to that replica from then on, so
/// that counters do not show fake resets.
pub fn penalty(a: &[Sample], b: &[Sample], counter_adjust: bool) -> Vec<Sample> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let mut ca = Cursor::new(a);
    let mut cb = Cursor::new(b);
    let mut last: Option<Sample> = None;
    let mut last_was_a: Option<bool> = None;
    loop {
        let next_a = ca.seek(last.map_or(i64::MIN, |l| l.t + 1 + ca.penalty));
        let next_b = cb.seek(last.map_or(i64::MIN, |l| l.t + 1 + cb.penalty));
        let use_a = match (next_a, next_b) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x.t <= y.t,
        };
        let (chosen, other, sample) = match (use_a, next_a, next_b) {
            (true, Some(s), _) => (&mut ca, &mut cb, s),
            (false, _, Some(s)) => (&mut cb, &mut ca, s),
            _ => break,
        };
        if other.samples.get(other.pos).is_some() {
            other.penalty = match last {
                Some(l) => 2 * (sample.t - l.t),
                None => INITIAL_PENALTY_MS,
            };
        }
        chosen.penalty = 0;
        if counter_adjust
            && last_was_a.is_some_and(|prev| prev != use_a)
            && let Some(l) = last
            && sample.v + chosen.adjust < l.v
        {
            chosen.adjust += l.v - (sample.v + chosen.adjust);
        }
        let emitted = Sample::new(sample.t, sample.v + chosen.adjust);
        out.push(emitted);
        last = Some(emitted);
        last_was_a = Some(use_a);
    }
    out
}

/// Union of the samples of all replicas; equal timestamps are collapsed to the sample of
/// the first replica holding it.
pub fn chain<R: AsRef<[Sample]>>(replicas: &[R]) -> Vec<Sample> {
    let mut all: Vec<(usize, Sample)> =
        Vec::with_capacity(replicas.iter().map(|r| r.as_ref().len()).sum());
    for (i, r) in replicas.iter().enumerate() {
        all.extend(r.as_ref().iter().map(|s| (i, *s)));
    }
    all.sort_by_key(|(i, s)| (s.t, *i));
    all.dedup_by_key(|(_, s)| s.t);
    all.into_iter().map(|(_, s)| s).collect()
}

/// Splits the decoded chunks of one series into "fake replicas": groups of chunks that do
/// not overlap in time, each flattened into one sorted sample vector. Chunks are given as
/// `(min_time, max_time, samples)` and assigned, in min-time order, to the first group
/// whose last chunk ends before they start.
pub fn split_overlapping(mut chunks: Vec<(i64, i64, Vec<Sample>)>) -> Vec<Vec<Sample>> {
    chunks.sort_by_key(|(min, max, _)| (*min, *max));
    let mut groups: Vec<(i64, Vec<Sample>)> = Vec::new();
    for (min, max, samples) in chunks {
        match groups.iter_mut().find(|(end, _)| *end < min) {
            Some((end, group)) => {
                *end = max;
                group.extend(samples);
            }
            None => groups.push((max, samples)),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ts: &[i64]) -> Vec<Sample> {
        ts.iter().map(|&t| Sample::new(t, t as f64)).collect()
    }

    fn ts(v: &[Sample]) -> Vec<i64> {
        v.iter().map(|x| x.t).collect()
    }

    // Golden vectors from components.md §5.6 / e2e.md §5.
    #[test]
    fn penalty_same_timestamps_takes_a() {
        let a: Vec<Sample> = s(&[10000, 20000, 30000, 40000]);
        let b: Vec<Sample> = a.iter().map(|x| Sample::new(x.t, -1.0)).collect();
        let out = penalty(&a, &b, false);
        assert_eq!(out, a);
    }

    #[test]
    fn penalty_earlier_replica_wins() {
        let a = s(&[10100, 20100, 30100, 40100]);
        let b = s(&[10000, 20000, 30000, 40000]);
        assert_eq!(penalty(&a, &b, false), b);
    }

    #[test]
    fn penalty_single_interval_gap_not_filled() {
        let a = s(&[10000, 20000, 40000]);
        let b = s(&[10000, 20000, 30000, 40000]);
        assert_eq!(ts(&penalty(&a, &b, false)), vec![10000, 20000, 40000]);
    }

    #[test]
    fn penalty_switches_on_large_gap() {
        let a = s(&[10000, 20000, 30000, 60000, 70000]);
        let b = s(&[10100, 20100, 30100, 40100, 50100, 60100]);
        let out = penalty(&a, &b, false);
        assert_eq!(ts(&out), vec![10000, 20000, 30000, 50100, 60100]);
        assert_eq!(out[3].v, 50100.0, "value comes from b");
    }

    #[test]
    fn e2e_sum_over_time_penalty_7_chain_15() {
        let t = 1_000_000;
        let r1 = vec![
            Sample::new(t, 1.0),
            Sample::new(t + 15_000, 2.0),
            Sample::new(t + 45_000, 4.0),
        ];
        let r2 = vec![
            Sample::new(t + 15_000, 2.0),
            Sample::new(t + 30_000, 3.0),
            Sample::new(t + 60_000, 5.0),
        ];
        let sum = |v: Vec<Sample>| v.iter().map(|x| x.v).sum::<f64>();
        let replicas = vec![r1, r2];
        assert_eq!(
            sum(merge_replicas(DedupFunc::Penalty, replicas.clone(), false)),
            7.0
        );
        assert_eq!(sum(merge_replicas(DedupFunc::Chain, replicas, false)), 15.0);
    }

    #[test]
    fn penalty_counter_adjustment_avoids_fake_reset() {
        // a counts 100..; b was restarted and is lower; switching to b must not go down.
        let a = vec![Sample::new(10000, 100.0), Sample::new(20000, 110.0)];
        let b = vec![
            Sample::new(10100, 5.0),
            Sample::new(20100, 15.0),
            Sample::new(50100, 45.0),
            Sample::new(60100, 55.0),
        ];
        let adjusted = penalty(&a, &b, true);
        let vals: Vec<f64> = adjusted.iter().map(|x| x.v).collect();
        assert_eq!(vals, vec![100.0, 110.0, 110.0, 120.0]);
        let raw: Vec<f64> = penalty(&a, &b, false).iter().map(|x| x.v).collect();
        assert_eq!(raw, vec![100.0, 110.0, 45.0, 55.0]);
        assert!(needs_counter_adjustment(Some("rate")));
        assert!(!needs_counter_adjustment(Some("sum_over_time")));
        assert!(!needs_counter_adjustment(None));
    }

    #[test]
    fn replicas_are_folded_pairwise() {
        let a = s(&[0, 10000, 20000]);
        let b: Vec<Sample> = s(&[0, 10000, 20000])
            .iter()
            .map(|x| Sample::new(x.t, 7.0))
            .collect();
        let c = s(&[0, 10000, 20000, 30000]);
        let out = merge_replicas(DedupFunc::Penalty, vec![a.clone(), b, c], false);
        assert_eq!(&out[..3], &a[..], "ties keep the first replica");
        // Once a replica ends, the other one still seeks past its penalty: the sample
        // 10s after the end is inside c's 2x20s penalty window and skipped.
        assert_eq!(ts(&out), vec![0, 10000, 20000]);
        let d = s(&[0, 10000, 20000, 80000]);
        assert_eq!(
            ts(&merge_replicas(DedupFunc::Penalty, vec![a, d], false)),
            vec![0, 10000, 20000, 80000]
        );
    }

    #[test]
    fn chain_unions_and_collapses() {
        let out = chain(&[s(&[1, 3, 5]), s(&[2, 3, 6])]);
        assert_eq!(ts(&out), vec![1, 2, 3, 5, 6]);
        assert!(chain::<Vec<Sample>>(&[]).is_empty());
    }

    #[test]
    fn overlapping_chunks_become_fake_replicas() {
        let groups = split_overlapping(vec![
            (0, 100, s(&[0, 50, 100])),
            (5, 105, s(&[5, 55, 105])),
            (101, 200, s(&[101, 200])),
            (106, 205, s(&[106, 205])),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(ts(&groups[0]), vec![0, 50, 100, 101, 200]);
        assert_eq!(ts(&groups[1]), vec![5, 55, 105, 106, 205]);
    }

    #[test]
    fn parses_func_names() {
        assert_eq!("penalty".parse::<DedupFunc>(), Ok(DedupFunc::Penalty));
        assert_eq!("chain".parse::<DedupFunc>(), Ok(DedupFunc::Chain));
        assert!("x".parse::<DedupFunc>().is_err());
    }
}
