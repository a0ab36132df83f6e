//! Runs Prometheus's promqltest conformance files against the engine.
//!
//! The directory comes from `PROMQLTEST_DIR` (default: the project's shared test data);
//! the per-eval feature tags from `promqltest-evals.tsv` next to it. Results are printed
//! per file and per tag (plain / native-histogram / experimental); the test fails when
//! fewer plain evals pass than [`PLAIN_FLOOR`]. Set `PROMQLTEST_VERBOSE=1` to list every
//! failing eval, `PROMQLTEST_FILE=name.test` to run one file, `PROMQLTEST_EAGER_NAMES=1`
//! to run with delayed `__name__` removal off (the engine's default).

use crate::dsl;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use dsl::{Command, Eval, EvalKind, Item, Matcher};
use promql_parser::parser::{AtModifier, Expr};
use thanos_model::Labels;
use thanos_model::histogram::{CounterResetHint, FloatHistogram};
use thanos_promql::{Engine, EngineOptions, Error, MemoryStorage, QueryParams, QueryResult, Value};

/// Minimum number of plain evals that must pass: all of them.
const PLAIN_FLOOR: usize = 938;

/// Minimum number of native-histogram evals that must pass (measured result). Most of
/// the rest use the experimental trim operators `</` and `>/`, `anchored`/`smoothed`
/// range selectors or start timestamps, none of which `promql-parser` 0.11 parses.
const HISTOGRAM_FLOOR: usize = 735;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Tag {
    Plain,
    NativeHistogram,
    Experimental,
}

fn classify(tags: &str) -> Tag {
    let tags: Vec<&str> = tags.split(',').filter(|t| !t.is_empty()).collect();
    if tags.contains(&"native_histograms") {
        Tag::NativeHistogram
    } else if tags
        .iter()
        .all(|t| matches!(*t, "annotations" | "at_modifier"))
    {
        Tag::Plain
    } else {
        Tag::Experimental
    }
}

fn test_dir() -> PathBuf {
    match std::env::var_os("PROMQLTEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/promqltest")
        }
    }
}

fn load_tags(dir: &std::path::Path) -> HashMap<(String, usize), Tag> {
    let tsv = dir.join("../promqltest-evals.tsv");
    let text =
        std::fs::read_to_string(&tsv).unwrap_or_else(|e| panic!("read {}: {e}", tsv.display()));
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 {
            continue;
        }
        let Ok(n) = cols[1].parse::<usize>() else {
            continue;
        };
        out.insert((cols[0].to_string(), n), classify(cols[4]));
    }
    out
}

fn almost_equal(a: f64, b: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    let sa = thanos_model::sample::is_stale_nan(a);
    let sb = thanos_model::sample::is_stale_nan(b);
    if sa || sb {
        return sa && sb;
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || a.abs() + b.abs() < MIN_NORMAL {
        return diff < 1e-6 * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < 1e-6
}

fn exec(
    engine: &Engine,
    storage: &MemoryStorage,
    expr: &Expr,
    p: QueryParams,
) -> Result<QueryResult, Error> {
    futures::executor::block_on(engine.exec(storage, expr.clone(), p))
}

fn check_annotations(
    kind: &str,
    got: &[String],
    want: &[Option<Matcher>],
    none: bool,
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("unexpected {kind} annotations: {got:?}"));
    }
    if want.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind} annotation, got none"));
    }
    let matchers: Vec<&Matcher> = want.iter().flatten().collect();
    if matchers.is_empty() {
        return Ok(());
    }
    for g in got {
        if !matchers.iter().any(|m| m.matches(g)) {
            return Err(format!("unexpected {kind} annotation {g:?}"));
        }
    }
    for m in &matchers {
        if !got.iter().any(|g| m.matches(g)) {
            return Err(format!("missing {kind} annotation {m:?}, got {got:?}"));
        }
    }
    Ok(())
}

fn check_error(ev: &Eval, res: &Result<QueryResult, Error>) -> Result<bool, String> {
    if !ev.expect.fail {
        return match res {
            Err(e) => Err(format!("unexpected error: {e}")),
            Ok(_) => Ok(false),
        };
    }
    match res {
        Ok(r) => Err(format!("expected failure, got {:?}", r.value.type_name())),
        Err(e) => {
            let msg = e.to_string();
            if let Some(m) = &ev.expect.fail_msg
                && &msg != m
            {
                return Err(format!("expected error {m:?}, got {msg:?}"));
            }
            if let Some(r) = &ev.expect.fail_regex
                && !regex::Regex::new(r)
                    .map(|re| re.is_match(&msg))
                    .unwrap_or(false)
            {
                return Err(format!("expected error matching {r:?}, got {msg:?}"));
            }
            Ok(true)
        }
    }
}

/// A result value: a float or a native histogram.
#[derive(Debug, Clone)]
enum Got {
    F(f64),
    H(FloatHistogram),
}

impl Got {
    fn of(v: f64, h: &Option<FloatHistogram>) -> Self {
        match h {
            Some(h) => Got::H(h.clone()),
            None => Got::F(v),
        }
    }
}

/// Compares an expected item with a result value (histograms as the Go runner does:
/// after compaction, counts with the float tolerance, hint only when written).
fn item_matches(want: &Item, got: &Got) -> bool {
    match (want, got) {
        (Item::Float(a), Got::F(b)) => almost_equal(*a, *b),
        (Item::Histogram(a, explicit_hint), Got::H(b)) => {
            let mut a = (**a).clone();
            let mut b = b.clone();
            a.compact();
            b.compact();
            let close = |x: &[f64], y: &[f64]| {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| almost_equal(*p, *q))
            };
            a.schema == b.schema
                && almost_equal(a.count, b.count)
                && almost_equal(a.sum, b.sum)
                && almost_equal(a.zero_count, b.zero_count)
                && a.zero_threshold == b.zero_threshold
                && a.positive_spans == b.positive_spans
                && a.negative_spans == b.negative_spans
                && close(&a.positive_buckets, &b.positive_buckets)
                && close(&a.negative_buckets, &b.negative_buckets)
                && a.custom_values == b.custom_values
                && (!explicit_hint || a.counter_reset_hint == b.counter_reset_hint)
        }
        _ => false,
    }
}

fn expected_vector(ev: &Eval) -> Result<Vec<(Labels, Item)>, String> {
    ev.series
        .iter()
        .map(|s| match s.items.as_slice() {
            [it @ (Item::Float(_) | Item::Histogram(..))] => Ok((s.labels.clone(), it.clone())),
            other => Err(format!("bad expected values {other:?}")),
        })
        .collect()
}

fn compare_vector(ev: &Eval, got: &[(Labels, Got)], ordered: bool) -> Result<(), String> {
    let want = expected_vector(ev)?;
    if want.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {got:?}",
            want.len(),
            got.len()
        ));
    }
    for (i, (l, v)) in want.iter().enumerate() {
        let found = if ordered {
            (&got[i].0 == l).then_some(&got[i])
        } else {
            got.iter().find(|g| &g.0 == l)
        };
        match found {
            None => {
                return Err(format!(
                    "missing series {l} (ordered={ordered}); got {got:?}"
                ));
            }
            Some(g) if !item_matches(v, &g.1) => {
                return Err(format!("series {l}: expected {v:?}, got {:?}", g.1));
            }
            _ => {}
        }
    }
    Ok(())
}

fn compare_matrix(
    ev: &Eval,
    got: &[thanos_promql::RangeSeries],
    start: i64,
    step: i64,
) -> Result<(), String> {
    for w in got.windows(2) {
        if w[0].labels >= w[1].labels {
            return Err("matrix is not sorted by labels".into());
        }
    }
    let mut want = Vec::new();
    for s in &ev.series {
        let mut pts = Vec::new();
        for (i, it) in s.items.iter().enumerate() {
            if !matches!(it, Item::Skip) {
                pts.push((start + i as i64 * step, it.clone()));
            }
        }
        want.push((s.labels.clone(), pts));
    }
    want.retain(|(_, p)| !p.is_empty());
    if want.len() != got.len() {
        return Err(format!(
            "expected {} series, got {}: {:?}",
            want.len(),
            got.len(),
            got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>()
        ));
    }
    for (l, pts) in &want {
        let g = got
            .iter()
            .find(|g| &g.labels == l)
            .ok_or_else(|| format!("missing series {l}"))?;
        let mut got_pts: Vec<(i64, Got)> = g
            .samples
            .iter()
            .map(|p| (p.t, Got::F(p.v)))
            .chain(g.histograms.iter().map(|p| (p.t, Got::H(p.h.clone()))))
            .collect();
        got_pts.sort_by_key(|p| p.0);
        let ok = got_pts.len() == pts.len()
            && got_pts
                .iter()
                .zip(pts)
                .all(|((ta, a), (t, v))| ta == t && item_matches(v, a));
        if !ok {
            return Err(format!("series {l}: expected {pts:?}, got {got_pts:?}"));
        }
    }
    Ok(())
}

/// Checks one instant-query result against the eval's expectations.
fn check_instant(
    ev: &Eval,
    res: Result<QueryResult, Error>,
    annotations: bool,
) -> Result<(), String> {
    if check_error(ev, &res)? {
        return Ok(());
    }
    let Ok(r) = res else { return Ok(()) };
    if annotations {
        check_annotations("warn", &r.warnings, &ev.expect.warn, ev.expect.no_warn)?;
        check_annotations("info", &r.infos, &ev.expect.info, ev.expect.no_info)?;
    }
    if let Some(s) = &ev.expect.string {
        return match &r.value {
            Value::String { v, .. } if v == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    if let Some((a, _b, s)) = ev.expect.range_vector {
        return match &r.value {
            Value::Matrix(m) => compare_matrix(ev, m, a, s),
            other => Err(format!("expected range vector, got {}", other.type_name())),
        };
    }
    if let Some(x) = ev.scalar {
        return match &r.value {
            Value::Scalar { v, .. } if almost_equal(*v, x) => Ok(()),
            other => Err(format!("expected scalar {x}, got {other:?}")),
        };
    }
    match &r.value {
        Value::Vector(v) => {
            let got: Vec<(Labels, Got)> = v
                .iter()
                .map(|s| (s.labels.clone(), Got::of(s.v, &s.h)))
                .collect();
            compare_vector(ev, &got, ev.expect.ordered)
        }
        other => Err(format!(
            "expected instant vector, got {}",
            other.type_name()
        )),
    }
}

/// Functions whose result depends on the evaluation time (no `@` step-invariance check).
const TIME_DEPENDENT: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

fn calls_time_dependent(e: &Expr) -> bool {
    match e {
        Expr::Call(c) => {
            TIME_DEPENDENT.contains(&c.func.name)
                || c.args.args.iter().any(|a| calls_time_dependent(a))
        }
        Expr::Aggregate(a) => {
            calls_time_dependent(&a.expr) || a.param.as_deref().is_some_and(calls_time_dependent)
        }
        Expr::Unary(u) => calls_time_dependent(&u.expr),
        Expr::Binary(b) => calls_time_dependent(&b.lhs) || calls_time_dependent(&b.rhs),
        Expr::Paren(p) => calls_time_dependent(&p.expr),
        Expr::Subquery(s) => calls_time_dependent(&s.expr),
        _ => false,
    }
}

/// Adds `@ at` to every selector and subquery without a fixed `@` (not inside one).
fn add_at(e: &mut Expr, at: &AtModifier) {
    let fixed = |a: &Option<AtModifier>| matches!(a, Some(AtModifier::At(_)));
    match e {
        Expr::VectorSelector(vs) if !fixed(&vs.at) => vs.at = Some(at.clone()),
        Expr::MatrixSelector(ms) if !fixed(&ms.vs.at) => ms.vs.at = Some(at.clone()),
        Expr::Subquery(sq) if !fixed(&sq.at) => sq.at = Some(at.clone()),
        Expr::Aggregate(a) => {
            add_at(&mut a.expr, at);
            if let Some(p) = a.param.as_mut() {
                add_at(p, at);
            }
        }
        Expr::Unary(u) => add_at(&mut u.expr, at),
        Expr::Binary(b) => {
            add_at(&mut b.lhs, at);
            add_at(&mut b.rhs, at);
        }
        Expr::Paren(p) => add_at(&mut p.expr, at),
        Expr::Call(c) => {
            for a in c.args.args.iter_mut() {
                add_at(a, at);
            }
        }
        _ => {}
    }
}

fn at_time(ms: i64) -> AtModifier {
    if ms >= 0 {
        AtModifier::At(UNIX_EPOCH + Duration::from_millis(ms as u64))
    } else {
        AtModifier::At(UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs()))
    }
}

fn run_eval(engine: &Engine, storage: &MemoryStorage, ev: &Eval) -> Result<(), String> {
    let params = match ev.kind {
        EvalKind::Range { start, end, step } => QueryParams::range(start, end, step),
        EvalKind::Instant { t } => QueryParams::instant(t),
    };
    let expr = match engine.parse_for(&ev.expr, &params) {
        Ok(e) => e,
        Err(e) if ev.expect.fail => {
            return check_error(ev, &Err(e)).map(|_| ());
        }
        Err(e) => return Err(format!("{e}")),
    };
    match ev.kind {
        EvalKind::Range { start, end, step } => {
            let res = exec(engine, storage, &expr, QueryParams::range(start, end, step));
            if check_error(ev, &res)? {
                return Ok(());
            }
            let Ok(r) = res else { return Ok(()) };
            check_annotations("warn", &r.warnings, &ev.expect.warn, ev.expect.no_warn)?;
            check_annotations("info", &r.infos, &ev.expect.info, ev.expect.no_info)?;
            match &r.value {
                Value::Matrix(m) => compare_matrix(ev, m, start, step),
                other => Err(format!("expected matrix, got {}", other.type_name())),
            }
        }
        EvalKind::Instant { t } => {
            check_instant(
                ev,
                exec(engine, storage, &expr, QueryParams::instant(t)),
                true,
            )?;
            if !calls_time_dependent(&expr) {
                let mut rewritten = expr.clone();
                add_at(&mut rewritten, &at_time(t));
                let times = if t == 0 {
                    vec![-1000, 0, 1000]
                } else {
                    vec![-10 * t, 0, t / 5, t, 10 * t]
                };
                for tt in times {
                    check_instant(
                        ev,
                        exec(engine, storage, &rewritten, QueryParams::instant(tt)),
                        true,
                    )
                    .map_err(|e| format!("with @ {t}ms evaluated at {tt}ms: {e}"))?;
                }
            }
            let skip_range = ev.expect.ordered
                || ev.expect.range_vector.is_some()
                || ev.expect.string.is_some()
                || ["start()", "end()", "range()", "step()"]
                    .iter()
                    .any(|f| ev.expr.contains(f));
            if !skip_range {
                let res = exec(
                    engine,
                    storage,
                    &expr,
                    QueryParams::range(t - 60_000, t + 60_000, 60_000),
                );
                if check_error(ev, &res).map_err(|e| format!("range mode: {e}"))? {
                    return Ok(());
                }
                let Ok(r) = res else { return Ok(()) };
                let Value::Matrix(m) = &r.value else {
                    return Err(format!("range mode: got {}", r.value.type_name()));
                };
                for w in m.windows(2) {
                    if w[0].labels >= w[1].labels {
                        return Err("range mode: matrix is not sorted".into());
                    }
                }
                let at_t: Vec<(Labels, Got)> = m
                    .iter()
                    .filter_map(|s| {
                        s.samples
                            .iter()
                            .find(|p| p.t == t)
                            .map(|p| (s.labels.clone(), Got::F(p.v)))
                            .or_else(|| {
                                s.histograms
                                    .iter()
                                    .find(|p| p.t == t)
                                    .map(|p| (s.labels.clone(), Got::H(p.h.clone())))
                            })
                    })
                    .collect();
                if let Some(x) = ev.scalar {
                    return match at_t.as_slice() {
                        [(_, Got::F(v))] if almost_equal(*v, x) => Ok(()),
                        other => Err(format!("range mode: expected scalar {x}, got {other:?}")),
                    };
                }
                compare_vector(ev, &at_t, false).map_err(|e| format!("range mode: {e}"))?;
            }
            Ok(())
        }
    }
}

/// Converts the classic histograms of a `load_with_nhcb` block (`<name>_bucket` series
/// with `le`, plus `<name>_count` and `<name>_sum`) into custom-bucket native histograms
/// named `<name>`, one per position where every bucket has a float value.
fn nhcb_series(series: &[dsl::SeriesLine]) -> Vec<dsl::SeriesLine> {
    type Group = Vec<(f64, usize)>;
    let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
    for (j, s) in series.iter().enumerate() {
        let Some(name) = s.labels.metric_name() else {
            continue;
        };
        let Some(base) = name.strip_suffix("_bucket") else {
            continue;
        };
        let Some(le) = s.labels.get("le").and_then(dsl::parse_number) else {
            continue;
        };
        let mut b = s.labels.builder();
        b.del("le").set("__name__", base.to_string());
        groups.entry(b.build()).or_default().push((le, j));
    }
    let find = |key: &Labels, suffix: &str| -> Option<&dsl::SeriesLine> {
        let name = format!("{}{suffix}", key.metric_name().unwrap_or(""));
        let mut b = key.builder();
        b.set("__name__", name);
        let want = b.build();
        series.iter().find(|s| s.labels == want)
    };
    let mut out = Vec::new();
    for (key, mut members) in groups {
        members.sort_by(|a, b| a.0.total_cmp(&b.0));
        let count_s = find(&key, "_count");
        let sum_s = find(&key, "_sum");
        let len = members
            .iter()
            .map(|(_, j)| series[*j].items.len())
            .max()
            .unwrap_or(0);
        let float_at = |s: &dsl::SeriesLine, k: usize| match s.items.get(k) {
            Some(Item::Float(v)) if !thanos_model::sample::is_stale_nan(*v) => Some(*v),
            _ => None,
        };
        let mut items = Vec::with_capacity(len);
        for k in 0..len {
            let cum: Option<Vec<f64>> = members
                .iter()
                .map(|(_, j)| float_at(&series[*j], k))
                .collect();
            let Some(cum) = cum else {
                items.push(Item::Skip);
                continue;
            };
            let bounds: Vec<f64> = members
                .iter()
                .map(|(le, _)| *le)
                .filter(|le| le.is_finite())
                .collect();
            let mut buckets = Vec::with_capacity(cum.len());
            let mut prev = 0.0;
            for c in &cum {
                buckets.push(c - prev);
                prev = *c;
            }
            if members.last().is_some_and(|(le, _)| le.is_finite()) {
                // No +Inf bucket: nothing above the highest bound.
                buckets.push(0.0);
            }
            let count = count_s.and_then(|s| float_at(s, k)).unwrap_or(prev);
            let sum = sum_s.and_then(|s| float_at(s, k)).unwrap_or(0.0);
            let mut h = FloatHistogram {
                schema: thanos_model::histogram::CUSTOM_BUCKETS_SCHEMA,
                count,
                sum,
                positive_spans: vec![thanos_model::histogram::Span::new(0, buckets.len() as u32)],
                positive_buckets: buckets,
                custom_values: bounds,
                ..FloatHistogram::default()
            };
            h.compact();
            items.push(Item::Histogram(Box::new(h), false));
        }
        out.push(dsl::SeriesLine { labels: key, items });
    }
    out
}

/// The counter-reset hint a histogram read back from the TSDB carries: gauges stay
/// gauges; a detected (or explicitly written) reset starts a chunk marked "reset"; the
/// first histogram of any other chunk (series start, after a float or gauge, after a
/// layout change) is "unknown"; later ones are "not reset". (The engine reports stored
/// "reset" hints as "unknown" outside histogram statistics functions.)
fn with_tsdb_hint(storage: &MemoryStorage, labels: &Labels, h: &FloatHistogram) -> FloatHistogram {
    let mut h = h.clone();
    if h.counter_reset_hint == CounterResetHint::Gauge {
        return h;
    }
    let explicit_reset = h.counter_reset_hint == CounterResetHint::CounterReset;
    h.counter_reset_hint = CounterResetHint::Unknown;
    let Some(prev) = storage.last_histogram(labels) else {
        if explicit_reset {
            h.counter_reset_hint = CounterResetHint::CounterReset;
        }
        return h;
    };
    let prev = &prev.h;
    h.counter_reset_hint = if explicit_reset || h.detect_reset(prev) {
        CounterResetHint::CounterReset
    } else if prev.counter_reset_hint == CounterResetHint::Gauge
        || h.schema != prev.schema
        || h.zero_threshold != prev.zero_threshold
        || h.custom_values != prev.custom_values
    {
        CounterResetHint::Unknown
    } else {
        CounterResetHint::NotCounterReset
    };
    h
}

#[derive(Default)]
struct Tally {
    by_tag: BTreeMap<Tag, (usize, usize)>,
}

fn run_file(
    engine: &Engine,
    name: &str,
    text: &str,
    tags: &HashMap<(String, usize), Tag>,
    verbose: bool,
) -> Result<Tally, String> {
    let cmds = dsl::parse_script(text).map_err(|e| format!("{name}: {e}"))?;
    let mut storage = MemoryStorage::new();
    let mut tally = Tally::default();
    for cmd in cmds {
        match cmd {
            Command::Clear => storage.clear(),
            Command::Load {
                interval,
                mut series,
                nhcb,
            } => {
                if nhcb {
                    series.extend(nhcb_series(&series));
                }
                for s in series {
                    for (k, it) in s.items.iter().enumerate() {
                        // Out-of-order appends are rejected, as by the TSDB appender.
                        let t = k as i64 * interval;
                        match it {
                            Item::Float(v) => {
                                let _ = storage.append(&s.labels, t, *v);
                            }
                            Item::Histogram(h, _) => {
                                let h = with_tsdb_hint(&storage, &s.labels, h);
                                let _ = storage.append_histogram(&s.labels, t, h);
                            }
                            Item::Skip => {}
                        }
                    }
                }
            }
            Command::Eval(ev) => {
                let tag = tags
                    .get(&(name.to_string(), ev.line))
                    .copied()
                    .unwrap_or(Tag::Experimental);
                let res = run_eval(engine, &storage, &ev);
                let e = tally.by_tag.entry(tag).or_default();
                match res {
                    Ok(()) => e.0 += 1,
                    Err(msg) => {
                        e.1 += 1;
                        if verbose {
                            println!("FAIL {name}:{} [{tag:?}] {}\n    {msg}", ev.line, ev.expr);
                        }
                    }
                }
            }
        }
    }
    Ok(tally)
}

#[test]
fn promqltest_conformance() {
    let dir = test_dir();
    assert!(
        dir.is_dir(),
        "promqltest directory {} is missing (set PROMQLTEST_DIR)",
        dir.display()
    );
    let tags = load_tags(&dir);
    let only = std::env::var("PROMQLTEST_FILE").ok();
    let verbose = std::env::var_os("PROMQLTEST_VERBOSE").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read promqltest dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .filter(|p| {
            only.as_deref()
                .is_none_or(|o| p.file_name().is_some_and(|f| f == o))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 10_000,
        default_subquery_step_ms: 60 * 1000,
        enable_experimental_functions: true,
        delayed_name_removal: std::env::var_os("PROMQLTEST_EAGER_NAMES").is_none(),
        ..EngineOptions::default()
    });
    let started = Instant::now();
    let results: Vec<(String, Result<Tally, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(files.len().div_ceil(2))
            .map(|chunk| {
                let engine = &engine;
                let tags = &tags;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| {
                            let name = p
                                .file_name()
                                .map(|f| f.to_string_lossy().to_string())
                                .unwrap_or_default();
                            let text = std::fs::read_to_string(p).map_err(|e| e.to_string());
                            let r = text.and_then(|t| run_file(engine, &name, &t, tags, verbose));
                            (name, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("runner thread"))
            .collect()
    });
    let mut totals: BTreeMap<Tag, (usize, usize)> = BTreeMap::new();
    println!(
        "{:<28} {:>13} {:>13} {:>13}",
        "file", "plain", "native-hist", "experimental"
    );
    let mut errors = Vec::new();
    for (name, r) in &results {
        match r {
            Ok(t) => {
                let cell = |tag: Tag| {
                    let (p, f) = t.by_tag.get(&tag).copied().unwrap_or_default();
                    format!("{p}/{}", p + f)
                };
                println!(
                    "{name:<28} {:>13} {:>13} {:>13}",
                    cell(Tag::Plain),
                    cell(Tag::NativeHistogram),
                    cell(Tag::Experimental)
                );
                for (tag, (p, f)) in &t.by_tag {
                    let e = totals.entry(*tag).or_default();
                    e.0 += p;
                    e.1 += f;
                }
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    let mut all = (0, 0);
    for (tag, (p, f)) in &totals {
        println!("total {tag:?}: passed {p} of {}", p + f);
        all.0 += p;
        all.1 += f;
    }
    println!("total all: passed {} of {}", all.0, all.0 + all.1);
    println!("elapsed: {:?}", started.elapsed());
    assert!(
        errors.is_empty(),
        "files that could not be parsed: {errors:?}"
    );
    let plain = totals.get(&Tag::Plain).map_or(0, |t| t.0);
    let hist = totals.get(&Tag::NativeHistogram).map_or(0, |t| t.0);
    if only.is_none() {
        assert!(
            plain >= PLAIN_FLOOR,
            "only {plain} plain evals passed, floor is {PLAIN_FLOOR}"
        );
        assert!(
            hist >= HISTOGRAM_FLOOR,
            "only {hist} native-histogram evals passed, floor is {HISTOGRAM_FLOOR}"
        );
    }
}
