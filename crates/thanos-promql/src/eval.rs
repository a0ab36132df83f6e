//! The evaluator: walks the AST and evaluates every node over all steps at once.
//!
//! Each instant-vector node yields a set of series with one optional value per step (a
//! dense step grid), so a range query is evaluated node by node as in Prometheus's
//! `rangeEval`. Range-vector nodes (matrix selectors and subqueries) yield the samples of
//! each series plus the window `(end - range, end]` of every step; functions slide a
//! [`Cursor`] over each series' samples, step after step.

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use std::hash::{BuildHasher as _, Hash, Hasher};
use std::sync::Arc;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_DIV, T_EQLC, T_GROUP, T_GTE,
    T_GTR, T_LAND, T_LIMIT_RATIO, T_LIMITK, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD,
    T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUB, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Expr, LabelModifier, MatrixSelector, SubqueryExpr,
    VectorMatchCardinality, VectorMatchFillValues, VectorSelector,
};
use thanos_model::histogram::{CounterResetHint, FloatHistogram};
use thanos_model::labels::METRIC_NAME;
use thanos_model::sample::is_stale_nan;
use thanos_model::{Labels, Sample};

use crate::engine::{EngineOptions, Fetched, at_ms, offset_ms, selector_key, selector_matchers};
use crate::error::Error;
use crate::functions;
use crate::mathx::{self, kahan_inc};
use crate::par;
use crate::storage::Series;
use crate::value::{HPoint, InstantSample, QueryResult, RangeSeries, Value};

/// Time parameters of the whole query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryTimes {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub instant: bool,
    pub lookback: i64,
}

impl QueryTimes {
    /// Evaluation steps of the query (1 for an instant query).
    pub fn n_steps(&self) -> usize {
        ((self.end - self.start) / self.step) as usize + 1
    }
}

/// The evaluation grid of one node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Steps {
    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// One series of an instant-vector node: a float, a histogram or nothing per step.
///
/// `hists` is empty when the series has no histogram point at all (the float path never
/// allocates it); otherwise it has one slot per step, and a step never has both a float
/// and a histogram.
#[derive(Debug, Clone)]
pub(crate) struct VSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub vals: Vec<Option<f64>>,
    pub hists: Vec<Option<FloatHistogram>>,
}

impl VSeries {
    /// A float-only series.
    pub fn new(labels: Labels, drop_name: bool, vals: Vec<Option<f64>>) -> Self {
        Self {
            labels,
            drop_name,
            vals,
            hists: Vec::new(),
        }
    }

    /// The histogram at step `i`, if any.
    pub fn hist(&self, i: usize) -> Option<&FloatHistogram> {
        self.hists.get(i).and_then(Option::as_ref)
    }

    /// True when the series has a float or histogram point at step `i`.
    pub fn has_point(&self, i: usize) -> bool {
        self.vals[i].is_some() || self.hist(i).is_some()
    }

    /// True when the series has no point at any step.
    pub fn is_empty(&self) -> bool {
        !self.vals.iter().any(Option::is_some) && !self.hists.iter().any(Option::is_some)
    }

    /// Stores a histogram at step `i` (clearing any float there).
    pub fn set_hist(&mut self, i: usize, h: FloatHistogram) {
        if self.hists.is_empty() {
            self.hists = vec![None; self.vals.len()];
        }
        self.vals[i] = None;
        self.hists[i] = Some(h);
    }

    /// Removes the point at step `i`.
    pub fn clear_point(&mut self, i: usize) {
        self.vals[i] = None;
        if let Some(h) = self.hists.get_mut(i) {
            *h = None;
        }
    }

    /// Takes the point at step `i` out of `other` into this series (if there is one).
    pub fn take_point_from(&mut self, other: &mut VSeries, i: usize) {
        if let Some(v) = other.vals[i].take() {
            self.vals[i] = Some(v);
        } else if let Some(h) = other.hists.get_mut(i).and_then(Option::take) {
            self.set_hist(i, h);
        }
    }
}

/// Float samples of a range-vector series: shared with the fetched data when the series
/// holds no stale marker (the common case, so no copy), an owned copy without the stale
/// markers otherwise.
#[derive(Debug, Clone)]
pub(crate) enum Samples {
    /// The float samples of series `.1` of the fetched data `.0`.
    Shared(Arc<Vec<Series>>, usize),
    /// Samples owned by the node.
    Owned(Vec<Sample>),
}

impl std::ops::Deref for Samples {
    type Target = [Sample];

    fn deref(&self) -> &[Sample] {
        match self {
            Samples::Shared(data, i) => &data[*i].samples,
            Samples::Owned(v) => v,
        }
    }
}

/// One series of a range-vector node (stale markers removed).
#[derive(Debug, Clone)]
pub(crate) struct MSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Samples,
    pub hists: Vec<HPoint>,
}

/// Something with a timestamp (ms).
pub(crate) trait Timed {
    fn t(&self) -> i64;
}

impl Timed for Sample {
    fn t(&self) -> i64 {
        self.t
    }
}

impl Timed for HPoint {
    fn t(&self) -> i64 {
        self.t
    }
}

/// Slices the window `(lo, hi]` out of time-sorted points, step after step. Windows of
/// successive steps move forward, so both ends advance monotonically over the whole
/// evaluation (linear in the series' length instead of two binary searches per step);
/// a window that moves back (never produced by the evaluator) falls back to a search.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    a: usize,
    b: usize,
}

impl Cursor {
    /// The points of `xs` with `lo < t <= hi`.
    pub fn window<'a, T: Timed>(&mut self, xs: &'a [T], (lo, hi): (i64, i64)) -> &'a [T] {
        self.a = advance(xs, self.a, lo);
        self.b = advance(xs, self.b.max(self.a), hi);
        &xs[self.a..self.b]
    }
}

/// The first index at or after `from` whose point is newer than `t`, searching from
/// scratch when the point before `from` is already newer.
fn advance<T: Timed>(xs: &[T], from: usize, t: i64) -> usize {
    if from > xs.len() || (from > 0 && xs[from - 1].t() > t) {
        return xs.partition_point(|x| x.t() <= t);
    }
    // Short moves (the usual step-to-step advance) are walked; long ones gallop and then
    // search the last gap.
    let mut i = from;
    let end = xs.len().min(from + 8);
    while i < end && xs[i].t() <= t {
        i += 1;
    }
    if i < end || i == xs.len() || xs[i].t() > t {
        return i;
    }
    let mut jump = 8;
    while i + jump < xs.len() && xs[i + jump].t() <= t {
        i += jump;
        jump *= 2;
    }
    let hi = (i + jump).min(xs.len());
    i + xs[i..hi].partition_point(|x| x.t() <= t)
}

/// Step-by-step windows over the float and histogram points of one range-vector series.
#[derive(Debug)]
pub(crate) struct SeriesWindows<'a> {
    m: &'a MatrixVal,
    samples: &'a [Sample],
    hists: &'a [HPoint],
    fc: Cursor,
    hc: Cursor,
}

impl<'a> SeriesWindows<'a> {
    /// The float and histogram points in the window of step `i`.
    pub fn at(&mut self, i: usize) -> (&'a [Sample], &'a [HPoint]) {
        let win = self.m.windows[i];
        let w = self.fc.window(self.samples, win);
        let hw = if self.hists.is_empty() {
            &[][..]
        } else {
            self.hc.window(self.hists, win)
        };
        (w, hw)
    }
}

/// A range-vector node: series and, per step, the window `(lo, hi]`.
#[derive(Debug, Clone)]
pub(crate) struct MatrixVal {
    pub series: Vec<MSeries>,
    pub windows: Vec<(i64, i64)>,
    /// Metric name of the selector, for annotations.
    pub metric_name: Option<String>,
}

impl MatrixVal {
    /// Roughly how many sample visits evaluating a function over every window takes: the
    /// samples between the first and last window, times how many windows overlap at a
    /// point, plus one per series and step.
    pub fn work(&self, steps: Steps) -> usize {
        let (Some(&(wlo, whi)), Some(&(_, hi))) = (self.windows.first(), self.windows.last())
        else {
            return 0;
        };
        let stride = match self.windows.get(1) {
            Some(&(_, next)) if next > whi => next - whi,
            _ => (whi - wlo).max(1),
        };
        let overlap = usize::try_from((whi - wlo).div_euclid(stride).max(0) + 1).unwrap_or(1);
        self.series
            .iter()
            .map(|s| Cursor::default().window(&s.samples, (wlo, hi)).len() * overlap + steps.n)
            .sum()
    }

    /// Windows of `s` for the steps in increasing order (see [`Cursor`]).
    pub fn windows_of<'a>(&'a self, s: &'a MSeries) -> SeriesWindows<'a> {
        SeriesWindows {
            m: self,
            samples: &s.samples,
            hists: &s.hists,
            fc: Cursor::default(),
            hc: Cursor::default(),
        }
    }
}

/// The value of a node.
#[derive(Debug, Clone)]
pub(crate) enum EVal {
    Scalar(Vec<f64>),
    Vector(Vec<VSeries>),
    Matrix(MatrixVal),
    Str(String),
}

impl EVal {
    pub fn type_name(&self) -> &'static str {
        match self {
            EVal::Scalar(_) => "scalar",
            EVal::Vector(_) => "instant vector",
            EVal::Matrix(_) => "range vector",
            EVal::Str(_) => "string",
        }
    }
}

pub(crate) struct Evaluator<'a> {
    pub opts: &'a EngineOptions,
    data: &'a Fetched,
    pub times: QueryTimes,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    /// Inside `histogram_count`/`histogram_sum`/`histogram_avg` (not below a subquery):
    /// selectors derive counter-reset hints from counts, as Prometheus's
    /// `HistogramStatsIterator` does.
    pub stats_hints: bool,
}

pub(crate) fn exec_err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Execution(msg.into()))
}

/// The `__type__` and `__unit__` metadata labels, dropped together with `__name__`.
const TYPE_LABEL: &str = "__type__";
const UNIT_LABEL: &str = "__unit__";

/// Labels without `__name__` (and the `__type__`/`__unit__` metadata labels).
pub(crate) fn without_name(l: &Labels) -> Labels {
    l.without(&[METRIC_NAME, TYPE_LABEL, UNIT_LABEL])
}

impl<'a> Evaluator<'a> {
    pub fn new(opts: &'a EngineOptions, data: &'a Fetched, times: QueryTimes) -> Self {
        Self {
            opts,
            data,
            times,
            warnings: Vec::new(),
            infos: Vec::new(),
            stats_hints: false,
        }
    }

    /// The series of a selector, with count-based counter-reset hints when evaluating
    /// under a histogram statistics function (see [`Self::stats_hints`]).
    fn selector_data(
        &self,
        vs: &VectorSelector,
    ) -> Result<std::sync::Arc<Vec<crate::storage::Series>>, Error> {
        let data = self.fetched(vs)?;
        let hint = |s: &crate::storage::Series| {
            s.histograms
                .iter()
                .any(|p| p.h.counter_reset_hint == CounterResetHint::CounterReset)
        };
        if !self.stats_hints && !data.iter().any(hint) {
            return Ok(data);
        }
        if data.iter().all(|s| s.histograms.is_empty()) {
            return Ok(data);
        }
        let mut out: Vec<crate::storage::Series> = (*data).clone();
        for s in &mut out {
            if !self.stats_hints {
                // Fully decoded samples report a stored "reset" as "unknown"
                // (prometheus/prometheus#15346); consumers detect resets by comparison.
                for p in &mut s.histograms {
                    if p.h.counter_reset_hint == CounterResetHint::CounterReset {
                        p.h.counter_reset_hint = CounterResetHint::Unknown;
                    }
                }
                continue;
            }
            let mut prev_count: Option<f64> = None;
            for p in &mut s.histograms {
                let count = p.h.count;
                if p.h.counter_reset_hint == CounterResetHint::Unknown
                    && let Some(prev) = prev_count
                {
                    p.h.counter_reset_hint = if count < prev {
                        CounterResetHint::CounterReset
                    } else {
                        CounterResetHint::NotCounterReset
                    };
                }
                prev_count = (!p.h.is_stale()).then_some(count);
            }
        }
        Ok(std::sync::Arc::new(out))
    }

    pub fn warn(&mut self, msg: String) {
        let m = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&m) {
            self.warnings.push(m);
        }
    }

    pub fn info(&mut self, msg: String) {
        let m = format!("PromQL info: {msg}");
        if !self.infos.contains(&m) {
            self.infos.push(m);
        }
    }

    /// Marks a series' name for removal (or removes it when name removal is not delayed).
    pub fn drop_name(&self, s: &mut VSeries) {
        if self.opts.delayed_name_removal {
            s.drop_name = true;
        } else {
            s.labels = without_name(&s.labels);
        }
    }

    fn check_samples(&self, n: usize) -> Result<(), Error> {
        if n > self.opts.max_samples {
            return Err(Error::TooManySamples {
                limit: self.opts.max_samples,
            });
        }
        Ok(())
    }

    /// Evaluates the whole query and converts the result to the API shape.
    pub fn run(mut self, expr: &Expr) -> Result<QueryResult, Error> {
        let times = self.times;
        if !times.instant {
            let ty = expr_type(expr);
            if ty != "scalar" && ty != "instant vector" {
                return Err(Error::Invalid(format!(
                    "invalid expression type \"{ty}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let n = times.n_steps();
        self.check_samples(n)?;
        let steps = Steps {
            start: times.start,
            step: times.step,
            n,
        };
        let v = self.eval(expr, steps)?;
        let value = match v {
            EVal::Scalar(vals) => {
                if times.instant {
                    Value::Scalar {
                        t: times.start,
                        v: vals[0],
                    }
                } else {
                    Value::Matrix(vec![RangeSeries {
                        labels: Labels::empty(),
                        samples: vals
                            .iter()
                            .enumerate()
                            .map(|(i, v)| Sample::new(steps.t(i), *v))
                            .collect(),
                        histograms: Vec::new(),
                    }])
                }
            }
            EVal::Str(s) => Value::String {
                t: times.start,
                v: s,
            },
            EVal::Vector(series) => {
                let series = finalize_names(series)?;
                if times.instant {
                    Value::Vector(
                        series
                            .into_iter()
                            .filter_map(|mut s| {
                                let h = s.hists.get_mut(0).and_then(Option::take);
                                if h.is_some() {
                                    return Some(InstantSample {
                                        labels: s.labels,
                                        t: times.start,
                                        v: 0.0,
                                        h,
                                    });
                                }
                                s.vals[0].map(|v| InstantSample {
                                    labels: s.labels,
                                    t: times.start,
                                    v,
                                    h: None,
                                })
                            })
                            .collect(),
                    )
                } else {
                    let mut out: Vec<RangeSeries> = series
                        .into_iter()
                        .filter_map(|s| {
                            let samples: Vec<Sample> = s
                                .vals
                                .iter()
                                .enumerate()
                                .filter_map(|(i, v)| v.map(|v| Sample::new(steps.t(i), v)))
                                .collect();
                            let histograms: Vec<HPoint> = s
                                .hists
                                .into_iter()
                                .enumerate()
                                .filter_map(|(i, h)| h.map(|h| HPoint { t: steps.t(i), h }))
                                .collect();
                            (!samples.is_empty() || !histograms.is_empty()).then_some(RangeSeries {
                                labels: s.labels,
                                samples,
                                histograms,
                            })
                        })
                        .collect();
                    out.sort_by(|a, b| a.labels.cmp(&b.labels));
                    Value::Matrix(out)
                }
            }
            EVal::Matrix(m) => {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                for s in &m.series {
                    let (w, hw) = m.windows_of(s).at(0);
                    if w.is_empty() && hw.is_empty() {
                        continue;
                    }
                    let labels = if s.drop_name {
                        without_name(&s.labels)
                    } else {
                        s.labels.clone()
                    };
                    if !seen.insert(labels.clone()) {
                        return exec_err("vector cannot contain metrics with the same labelset");
                    }
                    out.push(RangeSeries {
                        labels,
                        samples: w.to_vec(),
                        histograms: hw.to_vec(),
                    });
                }
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
        };
        Ok(QueryResult {
            value,
            warnings: self.warnings,
            infos: self.infos,
        })
    }

    pub fn eval(&mut self, expr: &Expr, steps: Steps) -> Result<EVal, Error> {
        let v = match expr {
            Expr::NumberLiteral(n) => EVal::Scalar(vec![n.val; steps.n]),
            Expr::StringLiteral(s) => EVal::Str(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, steps)?,
            Expr::Unary(u) => match self.eval(&u.expr, steps)? {
                EVal::Scalar(v) => EVal::Scalar(v.into_iter().map(|x| -x).collect()),
                EVal::Vector(mut vs) => {
                    for s in &mut vs {
                        for v in s.vals.iter_mut().flatten() {
                            *v = -*v;
                        }
                        for h in s.hists.iter_mut().flatten() {
                            h.mul(-1.0);
                            h.counter_reset_hint = CounterResetHint::Gauge;
                        }
                        self.drop_name(s);
                    }
                    EVal::Vector(vs)
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                        other.type_name()
                    )));
                }
            },
            Expr::VectorSelector(vs) => EVal::Vector(self.eval_vector_selector(vs, steps, false)?),
            Expr::MatrixSelector(ms) => EVal::Matrix(self.eval_matrix_selector(ms, steps)?),
            Expr::Subquery(sq) => EVal::Matrix(self.eval_subquery(sq, steps)?),
            Expr::Aggregate(a) => self.eval_aggregate(a, steps)?,
            Expr::Binary(b) => self.eval_binary(b, steps)?,
            Expr::Call(c) => functions::call(self, c, steps)?,
            Expr::Extension(_) => {
                return Err(Error::Invalid(
                    "extension expressions are not supported".into(),
                ));
            }
        };
        if let EVal::Vector(vs) = &v {
            let n: usize = vs
                .iter()
                .map(|s| {
                    s.vals.iter().filter(|v| v.is_some()).count()
                        + s.hists.iter().filter(|h| h.is_some()).count()
                })
                .sum();
            self.check_samples(n)?;
        }
        Ok(v)
    }

    fn fetched(
        &self,
        vs: &VectorSelector,
    ) -> Result<std::sync::Arc<Vec<crate::storage::Series>>, Error> {
        let key = selector_key(&selector_matchers(vs)?);
        Ok(self.data.get(&key).cloned().unwrap_or_default())
    }

    /// Instant selector: the newest sample in `(t - lookback, t]`, unless it is a stale
    /// marker. With `want_ts` the value is the sample's timestamp in seconds.
    pub fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        steps: Steps,
        want_ts: bool,
    ) -> Result<Vec<VSeries>, Error> {
        let data = self.selector_data(vs)?;
        let off = offset_ms(&vs.offset);
        let at = at_ms(&vs.at, self.times.start, self.times.end);
        Ok(self.instant_series(&data, at, off, steps, want_ts))
    }

    /// Series whose samples were fetched for `matchers` (empty when none were).
    pub fn fetched_for(
        &self,
        matchers: &[thanos_model::Matcher],
    ) -> std::sync::Arc<Vec<crate::storage::Series>> {
        self.data
            .get(&selector_key(matchers))
            .cloned()
            .unwrap_or_default()
    }

    /// Looks up every series' newest sample in the lookback window at each step.
    pub fn instant_series(
        &self,
        data: &[Series],
        at: Option<i64>,
        off: i64,
        steps: Steps,
        want_ts: bool,
    ) -> Vec<VSeries> {
        let lookback = self.times.lookback;
        let work = data.len() * steps.n;
        par::map(data, self.opts.threads_for(work), |s| {
            instant_points(s, at, off, steps, lookback, want_ts)
        })
        .into_iter()
        .flatten()
        .collect()
    }

    fn eval_matrix_selector(
        &mut self,
        ms: &MatrixSelector,
        steps: Steps,
    ) -> Result<MatrixVal, Error> {
        let vs = &ms.vs;
        let data = self.selector_data(vs)?;
        let off = offset_ms(&vs.offset);
        let at = at_ms(&vs.at, self.times.start, self.times.end);
        let range = ms.range.as_millis() as i64;
        let windows: Vec<(i64, i64)> = (0..steps.n)
            .map(|i| {
                let end = at.unwrap_or_else(|| steps.t(i)) - off;
                (end - range, end)
            })
            .collect();
        let series: Vec<MSeries> = data
            .iter()
            .enumerate()
            .filter_map(|(k, s)| {
                let samples = if s.samples.iter().any(|x| is_stale_nan(x.v)) {
                    Samples::Owned(
                        s.samples
                            .iter()
                            .copied()
                            .filter(|x| !is_stale_nan(x.v))
                            .collect(),
                    )
                } else {
                    Samples::Shared(Arc::clone(&data), k)
                };
                let hists: Vec<HPoint> = s
                    .histograms
                    .iter()
                    .filter(|x| !x.h.is_stale())
                    .cloned()
                    .collect();
                (!samples.is_empty() || !hists.is_empty()).then(|| MSeries {
                    labels: s.labels.clone(),
                    drop_name: false,
                    samples,
                    hists,
                })
            })
            .collect();
        let m = MatrixVal {
            series,
            windows,
            metric_name: vs.name.clone(),
        };
        // The largest window of each series is what Prometheus holds at once. No window
        // is larger than its whole series: only compute the windows when that bound is
        // over the limit.
        let bound: usize = m
            .series
            .iter()
            .map(|s| s.samples.len() + s.hists.len())
            .sum();
        if bound <= self.opts.max_samples {
            return Ok(m);
        }
        let total: usize = m
            .series
            .iter()
            .map(|s| {
                let mut w = m.windows_of(s);
                (0..steps.n)
                    .map(|i| {
                        let (f, h) = w.at(i);
                        f.len() + h.len()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .sum();
        self.check_samples(total)?;
        Ok(m)
    }

    fn eval_subquery(&mut self, sq: &SubqueryExpr, steps: Steps) -> Result<MatrixVal, Error> {
        let off = offset_ms(&sq.offset);
        let at = at_ms(&sq.at, self.times.start, self.times.end);
        let range = sq.range.as_millis() as i64;
        let step = sq
            .step
            .map(|d| d.as_millis() as i64)
            .filter(|s| *s > 0)
            .unwrap_or(self.opts.default_subquery_step_ms);
        let windows: Vec<(i64, i64)> = (0..steps.n)
            .map(|i| {
                let end = at.unwrap_or_else(|| steps.t(i)) - off;
                (end - range, end)
            })
            .collect();
        let lo = windows.iter().map(|w| w.0).min().unwrap_or(0);
        let hi = windows.iter().map(|w| w.1).max().unwrap_or(0);
        let mut first = lo.div_euclid(step) * step;
        if first <= lo {
            first += step;
        }
        let last = hi.div_euclid(step) * step;
        let mut series = Vec::new();
        if last >= first {
            let n = ((last - first) / step) as usize + 1;
            // Every inner step holds at least one point per series: refuse grids that
            // alone exceed the limit before allocating them.
            self.check_samples(n)?;
            let inner_steps = Steps {
                start: first,
                step,
                n,
            };
            let stats = std::mem::replace(&mut self.stats_hints, false);
            let inner = self.eval(&sq.expr, inner_steps);
            self.stats_hints = stats;
            match inner? {
                EVal::Vector(vs) => {
                    for s in vs {
                        let samples: Vec<Sample> = s
                            .vals
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| v.map(|v| Sample::new(inner_steps.t(i), v)))
                            .collect();
                        // Sampling at the subquery step makes the stored counter-reset
                        // hints meaningless: resets are detected by comparison instead.
                        let hists: Vec<HPoint> = s
                            .hists
                            .into_iter()
                            .enumerate()
                            .filter_map(|(i, h)| {
                                h.map(|mut h| {
                                    if h.counter_reset_hint != CounterResetHint::Gauge {
                                        h.counter_reset_hint = CounterResetHint::Unknown;
                                    }
                                    HPoint {
                                        t: inner_steps.t(i),
                                        h,
                                    }
                                })
                            })
                            .collect();
                        if !samples.is_empty() || !hists.is_empty() {
                            series.push(MSeries {
                                labels: s.labels,
                                drop_name: s.drop_name,
                                samples: Samples::Owned(samples),
                                hists,
                            });
                        }
                    }
                }
                EVal::Scalar(vals) => {
                    series.push(MSeries {
                        labels: Labels::empty(),
                        drop_name: false,
                        samples: Samples::Owned(
                            vals.iter()
                                .enumerate()
                                .map(|(i, v)| Sample::new(inner_steps.t(i), *v))
                                .collect(),
                        ),
                        hists: Vec::new(),
                    });
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        other.type_name()
                    )));
                }
            }
        }
        Ok(MatrixVal {
            series,
            windows,
            metric_name: None,
        })
    }

    // ---------------------------------------------------------------- aggregation

    fn eval_aggregate(&mut self, a: &AggregateExpr, steps: Steps) -> Result<EVal, Error> {
        let op = a.op.id();
        let param = match &a.param {
            Some(p) => Some(self.eval(p, steps)?),
            None => None,
        };
        let input = match self.eval(&a.expr, steps)? {
            EVal::Vector(v) => v,
            other => {
                return Err(Error::Invalid(format!(
                    "expected instant vector in aggregation, got {}",
                    other.type_name()
                )));
            }
        };
        let scalar_param = |p: &Option<EVal>| -> Result<Vec<f64>, Error> {
            match p {
                Some(EVal::Scalar(v)) => Ok(v.clone()),
                _ => Err(Error::Invalid(format!(
                    "expected scalar parameter for {}",
                    a.op
                ))),
            }
        };
        // Grouping keys.
        let mut group_of = Vec::with_capacity(input.len());
        let mut groups: Vec<(Labels, bool)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for s in &input {
            let (key, keeps_name) = group_labels(&s.labels, &a.modifier);
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, false));
                groups.len() - 1
            });
            if keeps_name && s.drop_name {
                groups[g].1 = true;
            }
            group_of.push(g);
        }
        match op {
            T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
                let p = scalar_param(&param)?;
                self.aggregate_k(op, &input, &group_of, groups.len(), &p, steps)
            }
            T_COUNT_VALUES => {
                let label = match &param {
                    Some(EVal::Str(s)) => s.clone(),
                    _ => {
                        return Err(Error::Invalid(
                            "expected string parameter for count_values".into(),
                        ));
                    }
                };
                if !crate::bytestr::is_valid_label_name(&label) {
                    return exec_err(format!(
                        "invalid label name {}",
                        crate::bytestr::go_quote(&label)
                    ));
                }
                let mut out: Vec<VSeries> = Vec::new();
                let mut idx: HashMap<Labels, usize> = HashMap::new();
                for i in 0..steps.n {
                    let mut counts: HashMap<Labels, f64> = HashMap::new();
                    let mut order = Vec::new();
                    for (j, s) in input.iter().enumerate() {
                        let value = match (s.vals[i], s.hist(i)) {
                            (Some(v), _) => Some(mathx::format_float(v)),
                            (None, Some(h)) => Some(mathx::format_histogram(h)),
                            _ => None,
                        };
                        if let Some(value) = value {
                            let mut b = groups[group_of[j]].0.builder();
                            b.set(label.clone(), value);
                            let l = b.build();
                            let c = counts.entry(l.clone()).or_insert_with(|| {
                                order.push(l);
                                0.0
                            });
                            *c += 1.0;
                        }
                    }
                    for l in order {
                        let c = counts[&l];
                        let k = *idx.entry(l.clone()).or_insert_with(|| {
                            out.push(VSeries::new(l, false, vec![None; steps.n]));
                            out.len() - 1
                        });
                        out[k].vals[i] = Some(c);
                    }
                }
                Ok(EVal::Vector(out))
            }
            _ => {
                let phi = if op == T_QUANTILE {
                    Some(scalar_param(&param)?)
                } else {
                    None
                };
                if phi.is_none() && input.iter().all(|s| s.hists.is_empty()) {
                    let vals = aggregate_floats(
                        op,
                        &input,
                        &group_of,
                        groups.len(),
                        steps,
                        self.opts.threads_for(input.len() * steps.n),
                    );
                    let mut out: Vec<VSeries> = groups
                        .into_iter()
                        .zip(vals)
                        .map(|((l, d), v)| VSeries::new(l, d, v))
                        .collect();
                    out.retain(|s| !s.is_empty());
                    return Ok(EVal::Vector(out));
                }
                let mut out: Vec<VSeries> = groups
                    .iter()
                    .map(|(l, d)| VSeries::new(l.clone(), *d, vec![None; steps.n]))
                    .collect();
                let any_hist = input.iter().any(|s| !s.hists.is_empty());
                let mut accs: Vec<Acc> = vec![Acc::default(); groups.len()];
                let mut qvals: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
                let mut haccs: Vec<HistAcc> = if any_hist {
                    vec![HistAcc::default(); groups.len()]
                } else {
                    Vec::new()
                };
                for i in 0..steps.n {
                    for a in accs.iter_mut() {
                        *a = Acc::default();
                    }
                    for q in qvals.iter_mut() {
                        q.clear();
                    }
                    for h in haccs.iter_mut() {
                        h.members.clear();
                    }
                    for (j, s) in input.iter().enumerate() {
                        let g = group_of[j];
                        if let Some(v) = s.vals[i] {
                            if op == T_QUANTILE {
                                qvals[g].push(v);
                            } else {
                                accs[g].add(op, v);
                            }
                        } else if s.hist(i).is_some() {
                            match op {
                                T_SUM | T_AVG => haccs[g].members.push(j),
                                T_COUNT | T_GROUP => accs[g].add(op, 0.0),
                                _ => {
                                    self.info(format!("ignored histogram in {} aggregation", a.op))
                                }
                            }
                        }
                    }
                    if let Some(phi) = &phi {
                        let q = phi[i];
                        if q.is_nan() || !(0.0..=1.0).contains(&q) {
                            self.warn(format!(
                                "quantile value should be between 0 and 1, got {}",
                                mathx::format_float(q)
                            ));
                        }
                        for (g, vals) in qvals.iter_mut().enumerate() {
                            if !vals.is_empty() {
                                out[g].vals[i] = Some(mathx::quantile(q, vals));
                            }
                        }
                    } else {
                        for (g, acc) in accs.iter().enumerate() {
                            let hacc = haccs.get(g).filter(|h| !h.members.is_empty());
                            match hacc {
                                Some(h) if matches!(op, T_SUM | T_AVG) => {
                                    if acc.count > 0.0 {
                                        self.warn(
                                            "encountered a mix of histograms and floats for aggregation"
                                                .into(),
                                        );
                                        continue;
                                    }
                                    let hs: Vec<&FloatHistogram> = h
                                        .members
                                        .iter()
                                        .filter_map(|j| input[*j].hist(i))
                                        .collect();
                                    let r = sum_histograms(&hs, op == T_AVG);
                                    if let Some(r) = self.hist_sum_result(r, "") {
                                        out[g].set_hist(i, r);
                                    }
                                }
                                _ if acc.count > 0.0 => out[g].vals[i] = Some(acc.result(op)),
                                _ => {}
                            }
                        }
                    }
                }
                out.retain(|s| !s.is_empty());
                Ok(EVal::Vector(out))
            }
        }
    }

    fn aggregate_k(
        &mut self,
        op: TokenId,
        input: &[VSeries],
        group_of: &[usize],
        ngroups: usize,
        param: &[f64],
        steps: Steps,
    ) -> Result<EVal, Error> {
        let mut selected: Vec<Vec<bool>> = vec![vec![false; steps.n]; input.len()];
        let mut order: Vec<usize> = Vec::new();
        let mut in_order = vec![false; input.len()];
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); ngroups];
        for i in 0..steps.n {
            let p = param[i];
            if p.is_nan() {
                if op == T_LIMIT_RATIO {
                    return exec_err("Ratio value is NaN");
                }
                return exec_err("Parameter value is NaN");
            }
            if op == T_LIMIT_RATIO && !(-1.0..=1.0).contains(&p) {
                let capped = p.clamp(-1.0, 1.0);
                self.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    mathx::format_float(p),
                    mathx::format_float(capped)
                ));
            }
            for m in members.iter_mut() {
                m.clear();
            }
            let limit = matches!(op, T_LIMITK | T_LIMIT_RATIO);
            for (j, s) in input.iter().enumerate() {
                if s.vals[i].is_some() || (limit && s.hist(i).is_some()) {
                    members[group_of[j]].push(j);
                } else if s.hist(i).is_some() {
                    self.info(format!(
                        "ignored histogram in {} aggregation",
                        if op == T_TOPK { "topk" } else { "bottomk" }
                    ));
                }
            }
            for m in members.iter_mut() {
                if m.is_empty() {
                    continue;
                }
                let chosen: Vec<usize> = if op == T_LIMIT_RATIO {
                    let r = p.clamp(-1.0, 1.0);
                    m.iter()
                        .copied()
                        .filter(|&j| {
                            let h = input[j].labels.stable_hash() as f64 / u64::MAX as f64;
                            if r >= 0.0 { h < r } else { h >= 1.0 + r }
                        })
                        .collect()
                } else {
                    if p >= 9.223_372_036_854_776e18 {
                        return exec_err(format!("Scalar value {p} overflows int64"));
                    }
                    let k = p as i64;
                    if k < 1 {
                        continue;
                    }
                    let k = (k as usize).min(m.len());
                    if op == T_LIMITK {
                        m[..k].to_vec()
                    } else {
                        let val = |j: usize| input[j].vals[i].unwrap_or(f64::NAN);
                        let top = op == T_TOPK;
                        m.sort_by(|&x, &y| {
                            let (a, b) = (val(x), val(y));
                            match (a.is_nan(), b.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if top => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
                                _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
                            }
                        });
                        m[..k].to_vec()
                    }
                };
                for j in chosen {
                    selected[j][i] = true;
                    if !in_order[j] {
                        in_order[j] = true;
                        order.push(j);
                    }
                }
            }
        }
        Ok(EVal::Vector(
            order
                .into_iter()
                .map(|j| {
                    let src = &input[j];
                    let mut out =
                        VSeries::new(src.labels.clone(), src.drop_name, vec![None; steps.n]);
                    for (i, keep) in selected[j].iter().enumerate() {
                        if *keep {
                            if let Some(h) = src.hist(i) {
                                out.set_hist(i, h.clone());
                            } else {
                                out.vals[i] = src.vals[i];
                            }
                        }
                    }
                    out
                })
                .collect(),
        ))
    }

    // ---------------------------------------------------------------- binary operators

    fn eval_binary(&mut self, b: &BinaryExpr, steps: Steps) -> Result<EVal, Error> {
        let op = b.op.id();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs, steps)?;
        let rhs = self.eval(&b.rhs, steps)?;
        match (lhs, rhs) {
            (EVal::Scalar(l), EVal::Scalar(r)) => Ok(EVal::Scalar(
                l.iter()
                    .zip(r.iter())
                    .map(|(a, b)| {
                        let (v, keep) = binop(op, *a, *b);
                        if is_comparison(op) {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (EVal::Vector(v), EVal::Scalar(s)) => Ok(EVal::Vector(self.vector_scalar(
                op,
                v,
                &s,
                false,
                return_bool,
            ))),
            (EVal::Scalar(s), EVal::Vector(v)) => Ok(EVal::Vector(self.vector_scalar(
                op,
                v,
                &s,
                true,
                return_bool,
            ))),
            (EVal::Vector(l), EVal::Vector(r)) => {
                let card = b
                    .modifier
                    .as_ref()
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
                let fill = b
                    .modifier
                    .as_ref()
                    .map(|m| m.fill_values.clone())
                    .unwrap_or_default();
                match op {
                    T_LAND | T_LOR | T_LUNLESS => {
                        Ok(EVal::Vector(set_op(op, l, r, &matching, steps)?))
                    }
                    _ => {
                        let m = VectorMatching {
                            card,
                            matching,
                            return_bool,
                            fill,
                        };
                        Ok(EVal::Vector(self.vector_vector(op, (l, r), &m, steps)?))
                    }
                }
            }
            (l, r) => Err(Error::Invalid(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }

    fn vector_scalar(
        &mut self,
        op: TokenId,
        mut v: Vec<VSeries>,
        s: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Vec<VSeries> {
        let cmp = is_comparison(op);
        for series in &mut v {
            for (i, slot) in series.vals.iter_mut().enumerate() {
                if let Some(x) = *slot {
                    let (a, b) = if swap { (s[i], x) } else { (x, s[i]) };
                    let (mut r, keep) = binop(op, a, b);
                    if cmp {
                        r = x;
                    }
                    *slot = if return_bool {
                        Some(if keep { 1.0 } else { 0.0 })
                    } else if keep {
                        Some(r)
                    } else {
                        None
                    };
                }
            }
            for (i, (slot, val)) in series
                .hists
                .iter_mut()
                .zip(series.vals.iter_mut())
                .enumerate()
            {
                let Some(h) = slot.take() else {
                    continue;
                };
                let (l, r) = if swap {
                    (Elem::F(s[i]), Elem::H(&h))
                } else {
                    (Elem::H(&h), Elem::F(s[i]))
                };
                if let Some((Owned::H(res), keep)) = self.elem_binop(op, l, r) {
                    if return_bool {
                        *val = Some(if keep { 1.0 } else { 0.0 });
                    } else if keep {
                        *slot = Some(if cmp { h } else { res });
                    }
                }
            }
            if return_bool || !cmp {
                self.drop_name(series);
            }
        }
        v.retain(|s| !s.is_empty());
        v
    }

    /// Applies `op` to two elements of which at least one is a histogram, with
    /// Prometheus's rules: `h*f`, `f*h`, `h/f`, `h+h`, `h-h`, `h==h`, `h!=h` are defined,
    /// everything else drops the element with an info annotation. For comparisons the
    /// result is the left histogram and whether the comparison holds; `None` drops the
    /// element.
    fn elem_binop(&mut self, op: TokenId, l: Elem<'_>, r: Elem<'_>) -> Option<(Owned, bool)> {
        let name = op_name(op);
        let scaled = |h: &FloatHistogram, f: f64, div: bool| {
            let mut h = h.clone();
            if div {
                h.div(f)
            } else {
                h.mul(f)
            }
            h.compact();
            Some((Owned::H(h), true))
        };
        match (l, r) {
            (Elem::F(a), Elem::F(b)) => {
                let (v, keep) = binop(op, a, b);
                Some((Owned::F(v), keep))
            }
            (Elem::F(f), Elem::H(h)) if op == T_MUL => scaled(h, f, false),
            (Elem::H(h), Elem::F(f)) if op == T_MUL || op == T_DIV => scaled(h, f, op == T_DIV),
            (Elem::H(a), Elem::H(b)) if op == T_ADD || op == T_SUB => {
                let mut res = a.clone();
                let out = if op == T_ADD { res.add(b) } else { res.sub(b) };
                match out {
                    Err(_) => {
                        self.warn(format!(
                            "incompatible bucket layout encountered for binary operator {name}"
                        ));
                        None
                    }
                    Ok(o) => {
                        let what = if op == T_ADD {
                            "addition"
                        } else {
                            "subtraction"
                        };
                        if o.counter_reset_collision {
                            self.warn(format!(
                                "conflicting counter resets during histogram {what}"
                            ));
                        }
                        if o.custom_bounds_reconciled {
                            self.info(format!(
                                "mismatched custom buckets were reconciled during {what}"
                            ));
                        }
                        if op == T_SUB {
                            // A difference of histograms is a gauge.
                            res.counter_reset_hint = CounterResetHint::Gauge;
                        }
                        res.compact();
                        Some((Owned::H(res), true))
                    }
                }
            }
            (Elem::H(a), Elem::H(b)) if op == T_EQLC || op == T_NEQ => {
                let eq = hist_equal(a, b);
                Some((Owned::H(a.clone()), eq == (op == T_EQLC)))
            }
            (l, r) => {
                self.info(format!(
                    "incompatible sample types encountered for binary operator {name:?}: {} {name} {}",
                    l.kind(),
                    r.kind()
                ));
                None
            }
        }
    }

    fn vector_vector(
        &mut self,
        op: TokenId,
        (lhs, rhs): (Vec<VSeries>, Vec<VSeries>),
        m: &VectorMatching,
        steps: Steps,
    ) -> Result<Vec<VSeries>, Error> {
        let VectorMatching {
            card,
            matching,
            return_bool,
            fill,
        } = m;
        let (card, matching, return_bool) = (card, matching, *return_bool);
        let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
        let (many, one) = if swapped { (&rhs, &lhs) } else { (&lhs, &rhs) };
        // Values used for a missing partner: `fill_right` completes the many side's
        // matches and `fill_left` the one side's, also for `group_right` (as Prometheus).
        let (fill_one, fill_many) = (fill.rhs, fill.lhs);
        let many_sig: Vec<u64> = many
            .iter()
            .map(|s| signature(&s.labels, matching))
            .collect();
        let one_sig: Vec<u64> = one.iter().map(|s| signature(&s.labels, matching)).collect();
        let include: Option<&Vec<String>> = match card {
            VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
                Some(&l.labels)
            }
            _ => None,
        };
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        let drops = return_bool || !is_comparison(op);
        let mut out: Vec<VSeries> = Vec::new();
        let mut out_index: HashMap<Labels, usize> = HashMap::new();
        // Output series per (many index, one index); `usize::MAX` marks a filled side.
        let mut pair_cache: HashMap<(usize, usize), usize> = HashMap::new();
        let mut one_map: HashMap<u64, usize> = HashMap::new();
        let mut matched: HashSet<u64> = HashSet::new();
        let mut one_used: HashSet<usize> = HashSet::new();
        let mut inserted: HashSet<usize> = HashSet::new();
        for i in 0..steps.n {
            one_map.clear();
            matched.clear();
            one_used.clear();
            inserted.clear();
            for (j, s) in one.iter().enumerate() {
                if !s.has_point(i) {
                    continue;
                }
                if let Some(prev) = one_map.insert(one_sig[j], j) {
                    let side = if swapped { "left" } else { "right" };
                    return exec_err(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        match_group(&s.labels, matching),
                        s.labels,
                        one[prev].labels
                    ));
                }
            }
            // (many index, one index, many value, one value)
            let mut pairs: Vec<(usize, usize, Elem<'_>, Elem<'_>)> = Vec::new();
            for (j, s) in many.iter().enumerate() {
                let Some(mv) = elem_at(s, i) else { continue };
                match one_map.get(&many_sig[j]) {
                    Some(&o) => {
                        if one_to_one && !matched.insert(many_sig[j]) {
                            return exec_err(
                                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                            );
                        }
                        one_used.insert(o);
                        if let Some(ov) = elem_at(&one[o], i) {
                            pairs.push((j, o, mv, ov));
                        }
                    }
                    None => {
                        if let Some(f) = fill_one {
                            pairs.push((j, usize::MAX, mv, Elem::F(f)));
                        }
                    }
                }
            }
            if let Some(f) = fill_many {
                for (o, s) in one.iter().enumerate() {
                    if let Some(ov) = elem_at(s, i)
                        && !one_used.contains(&o)
                    {
                        pairs.push((usize::MAX, o, Elem::F(f), ov));
                    }
                }
            }
            for (j, o, mv, ov) in pairs {
                let (a, b) = if swapped { (ov, mv) } else { (mv, ov) };
                let v = match (a, b) {
                    (Elem::F(a), Elem::F(b)) => {
                        let (mut v, keep) = binop(op, a, b);
                        if is_comparison(op) {
                            v = a;
                        }
                        if return_bool {
                            v = if keep { 1.0 } else { 0.0 };
                        } else if !keep {
                            continue;
                        }
                        Owned::F(v)
                    }
                    (a, b) => match self.elem_binop(op, a, b) {
                        None => continue,
                        Some((_, keep)) if return_bool => Owned::F(if keep { 1.0 } else { 0.0 }),
                        Some((_, false)) => continue,
                        Some((v, true)) => v,
                    },
                };
                let k = match pair_cache.get(&(j, o)) {
                    Some(k) => *k,
                    None => {
                        let (labels, drop_name) = if j == usize::MAX {
                            (match_group(&one[o].labels, matching), drops)
                        } else {
                            let one_labels = if o == usize::MAX {
                                Labels::empty()
                            } else {
                                one[o].labels.clone()
                            };
                            (
                                self.result_metric(
                                    &many[j].labels,
                                    &one_labels,
                                    op,
                                    card,
                                    matching,
                                    include,
                                ),
                                many[j].drop_name || drops,
                            )
                        };
                        let k = *out_index.entry(labels.clone()).or_insert_with(|| {
                            let mut vs = VSeries::new(labels, false, vec![None; steps.n]);
                            if drop_name {
                                self.drop_name(&mut vs);
                            }
                            out.push(vs);
                            out.len() - 1
                        });
                        pair_cache.insert((j, o), k);
                        k
                    }
                };
                if !one_to_one && !inserted.insert(k) {
                    return exec_err(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    );
                }
                match v {
                    Owned::F(v) => out[k].vals[i] = Some(v),
                    Owned::H(h) => out[k].set_hist(i, h),
                }
            }
        }
        Ok(out)
    }

    fn result_metric(
        &self,
        many: &Labels,
        one: &Labels,
        op: TokenId,
        card: &VectorMatchCardinality,
        matching: &Option<LabelModifier>,
        include: Option<&Vec<String>>,
    ) -> Labels {
        let mut b = many.builder();
        if !is_comparison(op) && !self.opts.delayed_name_removal {
            b.del(METRIC_NAME);
        }
        if matches!(card, VectorMatchCardinality::OneToOne) {
            match matching {
                Some(LabelModifier::Include(ls)) => {
                    let names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
                    b.keep(&names);
                }
                Some(LabelModifier::Exclude(ls)) => {
                    for l in &ls.labels {
                        b.del(l);
                    }
                }
                None => {}
            }
        }
        if let Some(inc) = include {
            for l in inc {
                match one.get(l) {
                    Some(v) => {
                        b.set(l.clone(), v.to_string());
                    }
                    None => {
                        b.del(l);
                    }
                }
            }
        }
        b.build()
    }
}

/// One operand of a binary operation on instant-vector elements.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Elem<'a> {
    F(f64),
    H(&'a FloatHistogram),
}

impl Elem<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Elem::F(_) => "float",
            Elem::H(_) => "histogram",
        }
    }
}

/// The result of a binary operation on elements.
#[derive(Debug, Clone)]
pub(crate) enum Owned {
    F(f64),
    H(FloatHistogram),
}

/// The element of series `s` at step `i`.
fn elem_at(s: &VSeries, i: usize) -> Option<Elem<'_>> {
    match s.vals[i] {
        Some(v) => Some(Elem::F(v)),
        None => s.hist(i).map(Elem::H),
    }
}

/// Histogram equality as Prometheus's `FloatHistogram.Equals` (hints are ignored).
pub(crate) fn hist_equal(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let feq = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan());
    let veq =
        |x: &[f64], y: &[f64]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| feq(*p, *q));
    a.schema == b.schema
        && feq(a.zero_threshold, b.zero_threshold)
        && feq(a.zero_count, b.zero_count)
        && feq(a.count, b.count)
        && feq(a.sum, b.sum)
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && veq(&a.positive_buckets, &b.positive_buckets)
        && veq(&a.negative_buckets, &b.negative_buckets)
        && veq(&a.custom_values, &b.custom_values)
}

/// The operator as Prometheus prints it in annotations.
fn op_name(op: TokenId) -> &'static str {
    match op {
        T_ADD => "+",
        T_SUB => "-",
        T_MUL => "*",
        T_DIV => "/",
        T_POW => "^",
        T_MOD => "%",
        T_ATAN2 => "atan2",
        T_EQLC => "==",
        T_NEQ => "!=",
        T_GTR => ">",
        T_LSS => "<",
        T_GTE => ">=",
        T_LTE => "<=",
        _ => "?",
    }
}

/// The vector-matching modifiers of a binary operation.
struct VectorMatching {
    card: VectorMatchCardinality,
    matching: Option<LabelModifier>,
    return_bool: bool,
    fill: VectorMatchFillValues,
}

/// Static type of an expression, as Prometheus names it.
pub(crate) fn expr_type(e: &Expr) -> &'static str {
    use promql_parser::parser::value::ValueType;
    match e.value_type() {
        ValueType::Scalar => "scalar",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

fn match_group(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(ls)) => {
            let names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
            l.keep(&names)
        }
        Some(LabelModifier::Exclude(ls)) => {
            let mut names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            l.without(&names)
        }
        None => l.without(&[METRIC_NAME]),
    }
}

/// Grouping labels of an aggregation and whether `__name__` survives grouping.
fn group_labels(l: &Labels, m: &Option<LabelModifier>) -> (Labels, bool) {
    match m {
        None => (Labels::empty(), false),
        Some(LabelModifier::Include(ls)) => {
            let names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
            (l.keep(&names), names.contains(&METRIC_NAME))
        }
        Some(LabelModifier::Exclude(ls)) => {
            let mut names: Vec<&str> = ls.labels.iter().map(String::as_str).collect();
            names.extend([METRIC_NAME, TYPE_LABEL, UNIT_LABEL]);
            (l.without(&names), false)
        }
    }
}

/// One series of an instant selector: at each step the newest sample in
/// `(t - lookback, t]` unless it is a stale marker (`None` when no step has one). The
/// evaluation times only move forward, so the sample positions advance with a [`Cursor`]
/// walk instead of a search per step.
fn instant_points(
    s: &Series,
    at: Option<i64>,
    off: i64,
    steps: Steps,
    lookback: i64,
    want_ts: bool,
) -> Option<VSeries> {
    let mut any = false;
    let mut hists: Vec<Option<FloatHistogram>> = Vec::new();
    let mut vals: Vec<Option<f64>> = Vec::with_capacity(steps.n);
    let (mut idx, mut hidx) = (0, 0);
    for i in 0..steps.n {
        let t = at.unwrap_or_else(|| steps.t(i)) - off;
        idx = advance(&s.samples, idx, t);
        let float = (idx > 0).then(|| s.samples[idx - 1]);
        if !s.histograms.is_empty() {
            hidx = advance(&s.histograms, hidx, t);
            if hidx > 0 {
                let hp = &s.histograms[hidx - 1];
                if float.is_none_or(|f| f.t < hp.t) {
                    if hp.t <= t - lookback || hp.h.is_stale() {
                        vals.push(None);
                        continue;
                    }
                    any = true;
                    if want_ts {
                        vals.push(Some(hp.t as f64 / 1000.0));
                        continue;
                    }
                    if hists.is_empty() {
                        hists = vec![None; steps.n];
                    }
                    hists[i] = Some(hp.h.clone());
                    vals.push(None);
                    continue;
                }
            }
        }
        let v = float.and_then(|x| {
            if x.t <= t - lookback || is_stale_nan(x.v) {
                return None;
            }
            any = true;
            Some(if want_ts { x.t as f64 / 1000.0 } else { x.v })
        });
        vals.push(v);
    }
    any.then(|| VSeries {
        labels: s.labels.clone(),
        drop_name: false,
        vals,
        hists,
    })
}

/// Float aggregation (`sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`)
/// of `input` into `ngroups` groups: one value per step and group.
///
/// Accumulators live in a flat array indexed by group and step, filled series by series
/// (each series' values are read sequentially), so every group still accumulates its
/// members in input order at every step, exactly as a step-by-step evaluation does.
/// With `threads > 1` the steps are split into ranges evaluated on separate threads.
fn aggregate_floats(
    op: TokenId,
    input: &[VSeries],
    group_of: &[usize],
    ngroups: usize,
    steps: Steps,
    threads: usize,
) -> Vec<Vec<Option<f64>>> {
    // Bound the accumulator array of one chunk (an `Acc` is 72 bytes).
    const MAX_ACCS: usize = 1 << 16;
    let chunk_len = (MAX_ACCS / ngroups.max(1)).clamp(1, steps.n.max(1));
    let chunk_len = if threads > 1 {
        // Give every thread at least one chunk.
        chunk_len.min(steps.n.div_ceil(threads).max(1))
    } else {
        chunk_len
    };
    let chunks: Vec<(usize, usize)> = (0..steps.n)
        .step_by(chunk_len)
        .map(|i0| (i0, (i0 + chunk_len).min(steps.n)))
        .collect();
    let parts = par::map(&chunks, threads, |&(i0, i1)| {
        let len = i1 - i0;
        let mut accs = vec![Acc::default(); ngroups * len];
        for (s, &g) in input.iter().zip(group_of) {
            let row = &mut accs[g * len..(g + 1) * len];
            for (acc, v) in row.iter_mut().zip(&s.vals[i0..i1]) {
                if let Some(v) = v {
                    acc.add(op, *v);
                }
            }
        }
        accs
    });
    let mut out: Vec<Vec<Option<f64>>> =
        (0..ngroups).map(|_| Vec::with_capacity(steps.n)).collect();
    for (&(i0, i1), accs) in chunks.iter().zip(parts) {
        let len = i1 - i0;
        for (g, vals) in out.iter_mut().enumerate() {
            vals.extend(
                accs[g * len..(g + 1) * len]
                    .iter()
                    .map(|a| (a.count > 0.0).then(|| a.result(op))),
            );
        }
    }
    out
}

/// Hash of the labels used for vector matching (fixed-seed, so both sides agree).
fn signature(l: &Labels, matching: &Option<LabelModifier>) -> u64 {
    let mut h = foldhash::quality::FixedState::default().build_hasher();
    match matching {
        Some(LabelModifier::Include(ls)) => {
            for x in l.iter().filter(|x| ls.labels.iter().any(|n| *n == x.name)) {
                x.name.hash(&mut h);
                x.value.hash(&mut h);
            }
        }
        Some(LabelModifier::Exclude(ls)) => {
            for x in l
                .iter()
                .filter(|x| x.name != METRIC_NAME && !ls.labels.iter().any(|n| *n == x.name))
            {
                x.name.hash(&mut h);
                x.value.hash(&mut h);
            }
        }
        None => {
            for x in l.iter().filter(|x| x.name != METRIC_NAME) {
                x.name.hash(&mut h);
                x.value.hash(&mut h);
            }
        }
    }
    h.finish()
}

fn set_op(
    op: TokenId,
    lhs: Vec<VSeries>,
    rhs: Vec<VSeries>,
    matching: &Option<LabelModifier>,
    steps: Steps,
) -> Result<Vec<VSeries>, Error> {
    let lsig: Vec<u64> = lhs.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsig: Vec<u64> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut lhs = lhs;
    let mut rhs = rhs;
    let mut set: HashSet<u64> = HashSet::new();
    for i in 0..steps.n {
        set.clear();
        match op {
            T_LAND | T_LUNLESS => {
                for (j, s) in rhs.iter().enumerate() {
                    if s.has_point(i) {
                        set.insert(rsig[j]);
                    }
                }
                for (j, s) in lhs.iter_mut().enumerate() {
                    if s.has_point(i) && (set.contains(&lsig[j]) != (op == T_LAND)) {
                        s.clear_point(i);
                    }
                }
            }
            _ => {
                for (j, s) in lhs.iter().enumerate() {
                    if s.has_point(i) {
                        set.insert(lsig[j]);
                    }
                }
                for (j, s) in rhs.iter_mut().enumerate() {
                    if s.has_point(i) && set.contains(&rsig[j]) {
                        s.clear_point(i);
                    }
                }
            }
        }
    }
    if op == T_LOR {
        lhs.append(&mut rhs);
        lhs = merge_same(lhs);
    }
    lhs.retain(|s| !s.is_empty());
    Ok(lhs)
}

/// Merges series with identical labels and name-drop flag (their points never overlap).
fn merge_same(series: Vec<VSeries>) -> Vec<VSeries> {
    let mut out: Vec<VSeries> = Vec::with_capacity(series.len());
    let mut idx: HashMap<(Labels, bool), usize> = HashMap::new();
    for mut s in series {
        match idx.get(&(s.labels.clone(), s.drop_name)) {
            Some(&k) => {
                for i in 0..s.vals.len() {
                    if !out[k].has_point(i) {
                        out[k].take_point_from(&mut s, i);
                    }
                }
            }
            None => {
                idx.insert((s.labels.clone(), s.drop_name), out.len());
                out.push(s);
            }
        }
    }
    out
}

/// Applies delayed name removal and rejects label sets that collide at the same step.
pub(crate) fn finalize_names(series: Vec<VSeries>) -> Result<Vec<VSeries>, Error> {
    let mut out: Vec<VSeries> = Vec::with_capacity(series.len());
    // Label sets are looked up by their xxhash (much cheaper than hashing every label
    // string with SipHash); `chain[k]` links output series whose hashes are equal.
    let mut idx: HashMap<u64, usize> = HashMap::with_capacity(series.len());
    let mut chain: Vec<Option<usize>> = Vec::with_capacity(series.len());
    for mut s in series {
        if s.drop_name {
            s.labels = without_name(&s.labels);
            s.drop_name = false;
        }
        let h = s.labels.stable_hash();
        let mut found = idx.get(&h).copied();
        while let Some(k) = found {
            if out[k].labels == s.labels {
                break;
            }
            found = chain[k];
        }
        match found {
            Some(k) => {
                for i in 0..s.vals.len() {
                    if s.has_point(i) {
                        if out[k].has_point(i) {
                            return exec_err(
                                "vector cannot contain metrics with the same labelset",
                            );
                        }
                        out[k].take_point_from(&mut s, i);
                    }
                }
            }
            None => {
                chain.push(idx.insert(h, out.len()));
                out.push(s);
            }
        }
    }
    Ok(out)
}

pub(crate) fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Applies an arithmetic or comparison operator; returns the value and whether a
/// comparison holds (always true for arithmetic).
pub(crate) fn binop(op: TokenId, a: f64, b: f64) -> (f64, bool) {
    match op {
        T_ADD => (a + b, true),
        T_SUB => (a - b, true),
        T_MUL => (a * b, true),
        T_DIV => (a / b, true),
        T_POW => (a.powf(b), true),
        T_MOD => (a % b, true),
        T_ATAN2 => (a.atan2(b), true),
        T_EQLC => (a, a == b),
        T_NEQ => (a, a != b),
        T_GTR => (a, a > b),
        T_LSS => (a, a < b),
        T_GTE => (a, a >= b),
        T_LTE => (a, a <= b),
        _ => (f64::NAN, false),
    }
}

/// The sum (or mean) of histograms with the annotations it calls for.
#[derive(Debug, Default)]
pub(crate) struct HistSum {
    /// The result; `None` when exponential and custom-bucket histograms were mixed.
    pub h: Option<FloatHistogram>,
    /// A "reset" and a "not reset" hint met.
    pub collision: bool,
    /// Custom bounds differed and were reconciled.
    pub reconciled: bool,
}

/// Sums `hs` (Kahan-compensated sum field, as Prometheus); with `avg` divides by their
/// number, switching to an incremental mean when the plain sum overflows.
pub(crate) fn sum_histograms(hs: &[&FloatHistogram], avg: bool) -> HistSum {
    let mut out = HistSum::default();
    let Some((first, rest)) = hs.split_first() else {
        return out;
    };
    // Prometheus warns when any input is marked "reset" and any "not reset".
    out.collision = hs
        .iter()
        .any(|h| h.counter_reset_hint == CounterResetHint::CounterReset)
        && hs
            .iter()
            .any(|h| h.counter_reset_hint == CounterResetHint::NotCounterReset);
    let mut acc = (*first).clone();
    let mut c = 0.0;
    for h in rest {
        let before = acc.sum;
        match acc.add(h) {
            Ok(o) => out.reconciled |= o.custom_bounds_reconciled,
            Err(_) => return out,
        }
        (acc.sum, c) = kahan_inc(h.sum, before, c);
    }
    if acc.sum.is_finite() {
        acc.sum += c;
    }
    if avg {
        let n = hs.len() as f64;
        let overflowed = (!acc.count.is_finite() || !acc.sum.is_finite())
            && hs.iter().all(|h| h.count.is_finite() && h.sum.is_finite());
        if overflowed {
            let hint = acc.counter_reset_hint;
            let mut mean = (*first).clone();
            for (k, h) in rest.iter().enumerate() {
                let k = (k + 2) as f64;
                let mut delta = (*h).clone();
                delta.div(k);
                let mut m = mean.clone();
                m.div(k);
                // Layouts are compatible: the plain sum above succeeded.
                if delta.sub(&m).is_err() || mean.add(&delta).is_err() {
                    return out;
                }
            }
            mean.counter_reset_hint = hint;
            // Fields whose plain (compensated) sum stayed finite are more exact that way.
            for (m, total) in [
                (&mut mean.sum, acc.sum),
                (&mut mean.count, acc.count),
                (&mut mean.zero_count, acc.zero_count),
            ] {
                if total.is_finite() {
                    *m = total / n;
                }
            }
            acc = mean;
        } else {
            acc.div(n);
        }
    }
    acc.compact();
    out.h = Some(acc);
    out
}

/// Histogram members (input indexes) of one aggregation group at one step.
#[derive(Debug, Clone, Default)]
struct HistAcc {
    members: Vec<usize>,
}

impl Evaluator<'_> {
    /// Reports the annotations of a [`HistSum`] and returns its histogram.
    pub(crate) fn hist_sum_result(&mut self, r: HistSum, metric: &str) -> Option<FloatHistogram> {
        if r.h.is_none() {
            self.warn(format!(
                "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
            ));
            return None;
        }
        if r.collision {
            self.warn("conflicting counter resets during histogram aggregation".into());
        }
        if r.reconciled {
            self.info("mismatched custom buckets were reconciled during aggregation".into());
        }
        r.h
    }
}

/// Running state of one aggregation group at one step.
#[derive(Debug, Clone, Default)]
struct Acc {
    count: f64,
    sum: f64,
    c: f64,
    mean: f64,
    mean_c: f64,
    incremental: bool,
    value: f64,
    aux: f64,
    aux_c: f64,
}

impl Acc {
    fn add(&mut self, op: TokenId, v: f64) {
        let first = self.count == 0.0;
        self.count += 1.0;
        match op {
            T_SUM => {
                (self.sum, self.c) = kahan_inc(v, self.sum, self.c);
            }
            T_AVG => {
                if first {
                    self.sum = v;
                    return;
                }
                if !self.incremental {
                    let (ns, nc) = kahan_inc(v, self.sum, self.c);
                    if !ns.is_infinite() {
                        self.sum = ns;
                        self.c = nc;
                        return;
                    }
                    self.incremental = true;
                    self.mean = self.sum / (self.count - 1.0);
                    self.mean_c = self.c / (self.count - 1.0);
                }
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                let q = (self.count - 1.0) / self.count;
                (self.mean, self.mean_c) =
                    kahan_inc(v / self.count, q * self.mean, q * self.mean_c);
            }
            T_MIN if first || self.value > v || self.value.is_nan() => self.value = v,
            T_MAX if first || self.value < v || self.value.is_nan() => self.value = v,
            T_STDDEV | T_STDVAR => {
                let delta = v - (self.mean + self.mean_c);
                (self.mean, self.mean_c) = kahan_inc(delta / self.count, self.mean, self.mean_c);
                let nd = v - (self.mean + self.mean_c);
                (self.aux, self.aux_c) = kahan_inc(delta * nd, self.aux, self.aux_c);
            }
            _ => {}
        }
    }

    fn result(&self, op: TokenId) -> f64 {
        match op {
            T_SUM => {
                if self.sum.is_infinite() {
                    self.sum
                } else {
                    self.sum + self.c
                }
            }
            T_AVG => {
                if self.incremental {
                    self.mean + self.mean_c
                } else if self.count == 1.0 {
                    self.sum
                } else {
                    let s = self.sum / self.count;
                    if s.is_infinite() {
                        s
                    } else {
                        s + self.c / self.count
                    }
                }
            }
            T_MIN | T_MAX => self.value,
            T_COUNT => self.count,
            T_GROUP => 1.0,
            T_STDVAR => (self.aux + self.aux_c) / self.count,
            T_STDDEV => ((self.aux + self.aux_c) / self.count).sqrt(),
            _ => f64::NAN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(pairs: &[(&str, &str)], vals: &[Option<f64>], drop_name: bool) -> VSeries {
        VSeries::new(
            Labels::from_pairs(pairs.iter().copied()),
            drop_name,
            vals.to_vec(),
        )
    }

    #[test]
    fn delayed_name_removal_merges_disjoint_and_rejects_overlap() {
        let a = vs(&[("__name__", "a"), ("x", "1")], &[Some(1.0), None], true);
        let b = vs(&[("__name__", "b"), ("x", "1")], &[None, Some(2.0)], true);
        let merged = finalize_names(vec![a.clone(), b]).unwrap();
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].labels, Labels::from_pairs([("x", "1")]));
        assert_eq!(merged[0].vals, vec![Some(1.0), Some(2.0)]);
        let c = vs(&[("__name__", "c"), ("x", "1")], &[Some(3.0), None], true);
        let err = finalize_names(vec![a, c]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "vector cannot contain metrics with the same labelset"
        );
        let kept = finalize_names(vec![vs(&[("__name__", "k")], &[Some(1.0)], false)]).unwrap();
        assert_eq!(kept[0].labels.metric_name(), Some("k"));
    }

    #[test]
    fn matching_signatures_ignore_the_name() {
        let a = Labels::from_pairs([("__name__", "a"), ("job", "j"), ("i", "1")]);
        let b = Labels::from_pairs([("__name__", "b"), ("job", "j"), ("i", "1")]);
        assert_eq!(signature(&a, &None), signature(&b, &None));
        let on_job = Some(LabelModifier::include(vec!["job"]));
        let c = Labels::from_pairs([("job", "j"), ("i", "2")]);
        assert_eq!(signature(&a, &on_job), signature(&c, &on_job));
        assert_ne!(signature(&a, &None), signature(&c, &None));
        let ignoring_i = Some(LabelModifier::exclude(vec!["i"]));
        assert_eq!(signature(&a, &ignoring_i), signature(&c, &ignoring_i));
    }

    #[test]
    fn operators_follow_go_float_semantics() {
        assert_eq!(binop(T_MOD, 7.0, 3.0), (1.0, true));
        assert!(binop(T_MOD, 1.0, 0.0).0.is_nan());
        assert_eq!(binop(T_POW, 2.0, 10.0).0, 1024.0);
        assert_eq!(binop(T_DIV, 1.0, 0.0).0, f64::INFINITY);
        assert_eq!(binop(T_GTR, 3.0, 2.0), (3.0, true));
        assert_eq!(binop(T_LTE, 3.0, 2.0), (3.0, false));
        assert!(!binop(T_EQLC, f64::NAN, f64::NAN).1);
    }

    #[test]
    fn cursor_windows_match_a_search_in_any_direction() {
        let xs: Vec<Sample> = (0..200)
            .map(|i| Sample::new(i * 10 + (i % 3), 0.0))
            .collect();
        let search = |(lo, hi): (i64, i64)| {
            let a = xs.partition_point(|x| x.t <= lo);
            let b = xs.partition_point(|x| x.t <= hi).max(a);
            (a, b)
        };
        let mut c = Cursor::default();
        // Forward with small and large (galloping) moves, then backwards, then empty.
        let wins = [
            (-50, 5),
            (0, 40),
            (35, 41),
            (500, 1200),
            (1900, 2500),
            (100, 300),
            (-10, -5),
            (3000, 4000),
        ];
        for w in wins {
            let got = c.window(&xs, w);
            let (a, b) = search(w);
            assert_eq!(got, &xs[a..b], "window {w:?}");
        }
    }

    #[test]
    fn flat_aggregation_matches_per_step_accumulation_on_any_thread_count() {
        let n = 300;
        let steps = Steps {
            start: 0,
            step: 1,
            n,
        };
        let input: Vec<VSeries> = (0..400)
            .map(|j| {
                let vals = (0..n)
                    .map(|i| ((i + j) % 7 != 0).then(|| ((i * 31 + j * 17) % 101) as f64 * 0.1))
                    .collect();
                VSeries::new(Labels::empty(), false, vals)
            })
            .collect();
        let group_of: Vec<usize> = (0..input.len()).map(|j| j % 3).collect();
        for op in [
            T_SUM, T_AVG, T_COUNT, T_MIN, T_MAX, T_GROUP, T_STDDEV, T_STDVAR,
        ] {
            let mut want = vec![vec![None; n]; 3];
            for i in 0..n {
                let mut accs = vec![Acc::default(); 3];
                for (s, g) in input.iter().zip(&group_of) {
                    if let Some(v) = s.vals[i] {
                        accs[*g].add(op, v);
                    }
                }
                for (w, acc) in want.iter_mut().zip(&accs) {
                    w[i] = (acc.count > 0.0).then(|| acc.result(op));
                }
            }
            for threads in [1, 2, 3] {
                let got = aggregate_floats(op, &input, &group_of, 3, steps, threads);
                let bits = |v: &Vec<Vec<Option<f64>>>| -> Vec<Vec<Option<u64>>> {
                    v.iter()
                        .map(|g| g.iter().map(|x| x.map(f64::to_bits)).collect())
                        .collect()
                };
                assert_eq!(bits(&got), bits(&want), "op {op} threads {threads}");
            }
        }
    }

    #[test]
    fn aggregation_accumulators() {
        let mut avg = Acc::default();
        for v in [f64::MAX, f64::MAX, -f64::MAX] {
            avg.add(T_AVG, v);
        }
        // The sum overflows; the incremental mean does not.
        assert!((avg.result(T_AVG) - f64::MAX / 3.0).abs() / (f64::MAX / 3.0) < 1e-9);
        let mut sd = Acc::default();
        for v in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            sd.add(T_STDDEV, v);
        }
        assert_eq!(sd.result(T_STDDEV), 2.0);
        let mut max = Acc::default();
        for v in [f64::NAN, 1.0, 3.0] {
            max.add(T_MAX, v);
        }
        assert_eq!(max.result(T_MAX), 3.0);
    }
}
