//! PromQL functions.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};
use regex::Regex;
use thanos_model::histogram::{CounterResetHint, FloatHistogram};
use thanos_model::labels::METRIC_NAME;
use thanos_model::{Labels, Sample};

use crate::error::Error;
use crate::eval::{EVal, Evaluator, MSeries, MatrixVal, Owned, Steps, VSeries, exec_err};
use crate::histfn;
use crate::mathx::{self, go_max, go_min, kahan_inc, linear_regression};
use crate::par;
use crate::value::HPoint;

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

fn vector_arg(ev: &mut Evaluator<'_>, e: &Expr, steps: Steps) -> Result<Vec<VSeries>, Error> {
    match ev.eval(e, steps)? {
        EVal::Vector(v) => Ok(v),
        other => Err(Error::Invalid(format!(
            "expected type instant vector in call to function, got {}",
            other.type_name()
        ))),
    }
}

fn scalar_arg(ev: &mut Evaluator<'_>, e: &Expr, steps: Steps) -> Result<Vec<f64>, Error> {
    match ev.eval(e, steps)? {
        EVal::Scalar(v) => Ok(v),
        other => Err(Error::Invalid(format!(
            "expected type scalar in call to function, got {}",
            other.type_name()
        ))),
    }
}

fn matrix_arg(ev: &mut Evaluator<'_>, e: &Expr, steps: Steps) -> Result<MatrixVal, Error> {
    match ev.eval(e, steps)? {
        EVal::Matrix(m) => Ok(m),
        other => Err(Error::Invalid(format!(
            "expected type range vector in call to function, got {}",
            other.type_name()
        ))),
    }
}

fn string_arg(e: &Expr) -> Result<String, Error> {
    match unparen(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(Error::Invalid("expected string literal argument".into())),
    }
}

/// Applies `f` to every window of every series of a range vector (float samples only;
/// histograms are ignored with an info annotation). Series are independent, so large
/// inputs are split between threads (see [`crate::par`]); the output keeps input order.
fn over_range(
    ev: &mut Evaluator<'_>,
    m: &MatrixVal,
    steps: Steps,
    keep_name: bool,
    f: impl Fn(&[Sample], usize, (i64, i64)) -> Option<f64> + Sync,
) -> Vec<VSeries> {
    let per_series = par::map(&m.series, ev.opts.threads_for(m.work(steps)), |s| {
        let mut any = false;
        let mut mixed = false;
        let mut cursor = m.windows_of(s);
        let vals: Vec<Option<f64>> = (0..steps.n)
            .map(|i| {
                let (w, hw) = cursor.at(i);
                if w.is_empty() {
                    return None;
                }
                mixed |= !hw.is_empty();
                let r = f(w, i, m.windows[i]);
                any |= r.is_some();
                r
            })
            .collect();
        (any.then_some(vals), mixed)
    });
    let mut out = Vec::new();
    for (s, (vals, mixed)) in m.series.iter().zip(per_series) {
        if mixed {
            ev.info(format!(
                "ignored histograms in a range containing both floats and histograms for metric name {:?}",
                series_metric(s)
            ));
        }
        if let Some(vals) = vals {
            let mut vs = VSeries::new(s.labels.clone(), s.drop_name, vals);
            if !keep_name {
                ev.drop_name(&mut vs);
            }
            out.push(vs);
        }
    }
    out
}

/// Like [`over_range`] for functions that also handle histograms: `f` gets the float and
/// histogram samples of each non-empty window.
fn over_range_any(
    ev: &mut Evaluator<'_>,
    m: &MatrixVal,
    steps: Steps,
    keep_name: bool,
    mut f: impl FnMut(&mut Evaluator<'_>, &MSeries, &[Sample], &[HPoint], usize) -> Option<Owned>,
) -> Vec<VSeries> {
    let mut out = Vec::new();
    for s in &m.series {
        let mut vs = VSeries::new(s.labels.clone(), s.drop_name, vec![None; steps.n]);
        let mut any = false;
        let mut cursor = m.windows_of(s);
        for i in 0..steps.n {
            let (w, hw) = cursor.at(i);
            if w.is_empty() && hw.is_empty() {
                continue;
            }
            match f(ev, s, w, hw, i) {
                Some(Owned::F(v)) => vs.vals[i] = Some(v),
                Some(Owned::H(h)) => vs.set_hist(i, h),
                None => continue,
            }
            any = true;
        }
        if any {
            if !keep_name {
                ev.drop_name(&mut vs);
            }
            out.push(vs);
        }
    }
    out
}

/// The metric name of a range-vector series, for annotations.
fn series_metric(s: &MSeries) -> String {
    s.labels.metric_name().unwrap_or("").to_string()
}

/// Applies `f(value, step)` to every point; `None` removes the point.
fn map_vector(
    ev: &mut Evaluator<'_>,
    mut v: Vec<VSeries>,
    mut f: impl FnMut(f64, usize) -> Option<f64>,
) -> Vec<VSeries> {
    for s in &mut v {
        for (i, slot) in s.vals.iter_mut().enumerate() {
            if let Some(x) = *slot {
                *slot = f(x, i);
            }
        }
        // Float functions ignore histogram samples.
        s.hists.clear();
        ev.drop_name(s);
    }
    v.retain(|s| !s.is_empty());
    v
}

fn extrapolated_rate(w: &[Sample], win: (i64, i64), counter: bool, rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let mut result = last.v - first.v;
    if counter {
        let mut prev = first.v;
        for s in &w[1..] {
            if s.v < prev {
                result += prev;
            }
            prev = s.v;
        }
    }
    let zero = (counter && result > 0.0 && first.v >= 0.0).then(|| first.v / result);
    Some(result * extrapolation_factor((first.t, last.t), w.len(), win, zero, rate))
}

/// Prometheus's rate extrapolation: the factor turning the increase between the first
/// and last sample (`ts`, `n` samples) into the increase over the window `(lo, hi]`
/// (per second with `rate`). `zero` is the counter's zero point as a fraction of the
/// sampled interval before the first sample, if it can be extrapolated.
fn extrapolation_factor(
    (first_t, last_t): (i64, i64),
    n: usize,
    (lo, hi): (i64, i64),
    zero: Option<f64>,
    rate: bool,
) -> f64 {
    let mut to_start = (first_t - lo) as f64 / 1000.0;
    let mut to_end = (hi - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if let Some(z) = zero {
        let to_zero = sampled * z;
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= (hi - lo) as f64 / 1000.0;
    }
    factor
}

/// The `*_over_time` functions that accept histograms, over a window that has some.
fn hist_over_time(
    ev: &mut Evaluator<'_>,
    name: &str,
    s: &MSeries,
    w: &[Sample],
    hw: &[HPoint],
) -> Option<Owned> {
    let first_t = match (w.first(), hw.first()) {
        (Some(f), Some(h)) => f.t.min(h.t),
        (Some(f), None) => f.t,
        (None, Some(h)) => h.t,
        (None, None) => return None,
    };
    let last_f = w.last();
    let last_h = hw.last();
    let last_t = last_f
        .map_or(i64::MIN, |f| f.t)
        .max(last_h.map_or(i64::MIN, |h| h.t));
    match name {
        "count_over_time" => Some(Owned::F((w.len() + hw.len()) as f64)),
        "present_over_time" => Some(Owned::F(1.0)),
        "ts_of_first_over_time" => Some(Owned::F(first_t as f64 / 1000.0)),
        "ts_of_last_over_time" => Some(Owned::F(last_t as f64 / 1000.0)),
        "last_over_time" => match (last_f, last_h) {
            (Some(f), Some(h)) if f.t > h.t => Some(Owned::F(f.v)),
            (_, Some(h)) => Some(Owned::H(h.h.clone())),
            (Some(f), None) => Some(Owned::F(f.v)),
            (None, None) => None,
        },
        "first_over_time" => match (w.first(), hw.first()) {
            (Some(f), Some(h)) if f.t < h.t => Some(Owned::F(f.v)),
            (_, Some(h)) => Some(Owned::H(h.h.clone())),
            (Some(f), None) => Some(Owned::F(f.v)),
            (None, None) => None,
        },
        _ => {
            let metric = series_metric(s);
            if !w.is_empty() {
                ev.warn(format!(
                    "encountered a mix of histograms and floats for metric name {metric:?}"
                ));
                return None;
            }
            let hs: Vec<&FloatHistogram> = hw.iter().map(|p| &p.h).collect();
            let r = crate::eval::sum_histograms(&hs, name == "avg_over_time");
            ev.hist_sum_result(r, &metric).map(Owned::H)
        }
    }
}

/// `histogram_quantile` of a native histogram, with the NaN-observation annotations.
fn native_quantile(ev: &mut Evaluator<'_>, l: &Labels, q: f64, h: &FloatHistogram) -> f64 {
    let r = histfn::quantile(q, h);
    if h.sum.is_nan() && h.count > 0.0 && (0.0..=1.0).contains(&q) {
        let metric = l.metric_name().unwrap_or("");
        if r.is_nan() {
            ev.info(format!(
                "input to histogram_quantile has NaN observations, result is NaN for metric name {metric:?}"
            ));
        } else {
            ev.info(format!(
                "input to histogram_quantile has NaN observations, result is skewed higher for metric name {metric:?}"
            ));
        }
    }
    r
}

/// Reports the annotations collected by [`histfn::rate`].
fn rate_notes(ev: &mut Evaluator<'_>, notes: &histfn::RateNotes, metric: &str) {
    if notes.not_counter {
        ev.warn(format!(
            "this native histogram metric is not a counter: {metric:?}"
        ));
    }
    if notes.not_gauge {
        ev.warn(format!(
            "this native histogram metric is not a gauge: {metric:?}"
        ));
    }
    if notes.mixed_schemas {
        ev.warn(format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
        ));
    }
    if notes.reconciled {
        ev.info("mismatched custom buckets were reconciled during subtraction".into());
    }
}

/// A float or histogram point of a range.
#[derive(Debug, Clone, Copy)]
enum Pt<'a> {
    F(&'a Sample),
    H(&'a HPoint),
}

impl Pt<'_> {
    fn t(&self) -> i64 {
        match self {
            Pt::F(s) => s.t,
            Pt::H(h) => h.t,
        }
    }
}

/// Float and histogram points of a window merged in time order.
fn merged<'a>(w: &'a [Sample], hw: &'a [HPoint]) -> Vec<Pt<'a>> {
    let mut out = Vec::with_capacity(w.len() + hw.len());
    let (mut i, mut j) = (0, 0);
    while i < w.len() || j < hw.len() {
        if j >= hw.len() || (i < w.len() && w[i].t < hw[j].t) {
            out.push(Pt::F(&w[i]));
            i += 1;
        } else {
            out.push(Pt::H(&hw[j]));
            j += 1;
        }
    }
    out
}

/// The two newest points of a window (older first).
fn last_two<'a>(w: &'a [Sample], hw: &'a [HPoint]) -> (Option<Pt<'a>>, Option<Pt<'a>>) {
    let mut pts: Vec<Pt<'a>> = Vec::with_capacity(4);
    pts.extend(w.iter().rev().take(2).map(Pt::F));
    pts.extend(hw.iter().rev().take(2).map(Pt::H));
    pts.sort_by_key(|p| std::cmp::Reverse(p.t()));
    (pts.get(1).copied(), pts.first().copied())
}

fn instant_value(w: &[Sample], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut result = if rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn avg_over(w: &[Sample]) -> f64 {
    let (mut sum, mut c, mut mean) = (w[0].v, 0.0, 0.0);
    let mut incremental = false;
    let mut count = 1.0;
    for (i, s) in w.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(s.v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(s.v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn variance_over(w: &[Sample]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in w {
        count += 1.0;
        let delta = s.v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (s.v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

fn double_exp_smoothing(w: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = w[0].v;
    let mut b = w[1].v - w[0].v;
    for (i, s) in w.iter().enumerate().skip(1) {
        let x = sf * s.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

fn regex_for(func: &str, re: &str) -> Result<Regex, Error> {
    Regex::new(&format!("^(?s:{re})$"))
        .map_err(|e| Error::Execution(format!("invalid regular expression in {func}(): {re}: {e}")))
}

/// Rejects two series with the same labels having a value at the same step.
fn check_unique(series: Vec<VSeries>) -> Result<Vec<VSeries>, Error> {
    let mut idx: HashMap<(Labels, bool), usize> = HashMap::new();
    let mut out: Vec<VSeries> = Vec::with_capacity(series.len());
    for mut s in series {
        match idx.get(&(s.labels.clone(), s.drop_name)) {
            Some(&k) => {
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
                idx.insert((s.labels.clone(), s.drop_name), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn sort_warning(ev: &mut Evaluator<'_>) {
    if !ev.times.instant {
        ev.warn(
            "sort is ineffective for range queries since results are always ordered by labels"
                .into(),
        );
    }
}

fn absent_labels(e: &Expr) -> Labels {
    let vs = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(m) => &m.vs,
        _ => return Labels::empty(),
    };
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &vs.matchers.matchers {
        *counts.entry(m.name.as_str()).or_default() += 1;
    }
    let mut b = Labels::empty().builder();
    for m in &vs.matchers.matchers {
        if m.name != METRIC_NAME
            && matches!(m.op, promql_parser::label::MatchOp::Equal)
            && counts[m.name.as_str()] == 1
        {
            b.set(m.name.clone(), m.value.clone());
        }
    }
    b.build()
}

/// Evaluates a function call.
pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, steps: Steps) -> Result<EVal, Error> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    let arg = |i: usize| -> Result<&Expr, Error> {
        args.get(i)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("missing argument {i} of {name}()")))
    };
    let v = match name {
        "time" => EVal::Scalar((0..steps.n).map(|i| steps.t(i) as f64 / 1000.0).collect()),
        "pi" => EVal::Scalar(vec![std::f64::consts::PI; steps.n]),
        "step" | "range" | "start" | "end" => {
            let t = ev.times;
            let v = match name {
                "step" if t.instant => 0.0,
                "step" => t.step as f64 / 1000.0,
                "range" => (t.end - t.start) as f64 / 1000.0,
                "start" => t.start as f64 / 1000.0,
                _ => t.end as f64 / 1000.0,
            };
            EVal::Scalar(vec![v; steps.n])
        }
        "min_of" | "max_of" => {
            let a = scalar_arg(ev, arg(0)?, steps)?;
            let b = scalar_arg(ev, arg(1)?, steps)?;
            let f = if name == "min_of" { go_min } else { go_max };
            EVal::Scalar(a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect())
        }
        "vector" => {
            let s = scalar_arg(ev, arg(0)?, steps)?;
            EVal::Vector(vec![VSeries::new(
                Labels::empty(),
                false,
                s.into_iter().map(Some).collect(),
            )])
        }
        "scalar" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            EVal::Scalar(
                (0..steps.n)
                    .map(|i| {
                        // Histograms are ignored.
                        let mut it = v.iter().filter_map(|s| s.vals[i]);
                        match (it.next(), it.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            )
        }
        "timestamp" => {
            let a = unparen(arg(0)?);
            let mut v = match a {
                Expr::VectorSelector(vs) => ev.eval_vector_selector(vs, steps, true)?,
                _ => {
                    let v = vector_arg(ev, a, steps)?;
                    v.into_iter()
                        .map(|mut s| {
                            for i in 0..steps.n {
                                if s.has_point(i) {
                                    s.vals[i] = Some(steps.t(i) as f64 / 1000.0);
                                }
                            }
                            s.hists.clear();
                            s
                        })
                        .collect()
                }
            };
            for s in &mut v {
                ev.drop_name(s);
            }
            EVal::Vector(v)
        }
        "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sgn" | "sin"
        | "cos" | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh"
        | "acosh" | "atanh" | "deg" | "rad" => {
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "sqrt" => f64::sqrt,
                "ln" => f64::ln,
                "log2" => f64::log2,
                "log10" => f64::log10,
                "sgn" => |x| {
                    if x < 0.0 {
                        -1.0
                    } else if x > 0.0 {
                        1.0
                    } else {
                        x
                    }
                },
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "asin" => f64::asin,
                "acos" => f64::acos,
                "atan" => f64::atan,
                "sinh" => f64::sinh,
                "cosh" => f64::cosh,
                "tanh" => f64::tanh,
                "asinh" => f64::asinh,
                "acosh" => f64::acosh,
                "atanh" => f64::atanh,
                "deg" => |x| x * 180.0 / std::f64::consts::PI,
                _ => |x| x * std::f64::consts::PI / 180.0,
            };
            let v = vector_arg(ev, arg(0)?, steps)?;
            EVal::Vector(map_vector(ev, v, |x, _| Some(f(x))))
        }
        "round" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            let to = match args.get(1) {
                Some(e) => scalar_arg(ev, e, steps)?,
                None => vec![1.0; steps.n],
            };
            EVal::Vector(map_vector(ev, v, |x, i| {
                let inv = 1.0 / to[i];
                Some((x * inv + 0.5).floor() / inv)
            }))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            let a = scalar_arg(ev, arg(1)?, steps)?;
            let b = if name == "clamp" {
                scalar_arg(ev, arg(2)?, steps)?
            } else {
                Vec::new()
            };
            EVal::Vector(map_vector(ev, v, |x, i| match name {
                // NaN bounds do not drop the sample (they yield NaN).
                "clamp" => (b[i] >= a[i] || b[i].is_nan() || a[i].is_nan())
                    .then(|| go_max(a[i], go_min(b[i], x))),
                "clamp_min" => Some(go_max(a[i], x)),
                _ => Some(go_min(a[i], x)),
            }))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            let v = match args.first() {
                Some(e) => vector_arg(ev, e, steps)?,
                None => vec![VSeries::new(
                    Labels::empty(),
                    false,
                    (0..steps.n)
                        .map(|i| Some(steps.t(i) as f64 / 1000.0))
                        .collect(),
                )],
            };
            EVal::Vector(map_vector(ev, v, |x, _| {
                if !x.is_finite() {
                    return Some(f64::NAN);
                }
                let c = mathx::civil(x as i64);
                Some(match name {
                    "day_of_month" => c.day as f64,
                    "day_of_week" => c.wday as f64,
                    "day_of_year" => c.yday as f64,
                    "days_in_month" => mathx::days_in_month(c.year, c.month) as f64,
                    "hour" => c.hour as f64,
                    "minute" => c.minute as f64,
                    "month" => c.month as f64,
                    _ => c.year as f64,
                })
            }))
        }
        "label_replace" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            let dst = string_arg(arg(1)?)?;
            let repl = string_arg(arg(2)?)?;
            let src = string_arg(arg(3)?)?;
            let re = regex_for(name, &string_arg(arg(4)?)?)?;
            if !crate::bytestr::is_valid_label_name(&dst) {
                return exec_err(format!(
                    "invalid destination label name in label_replace(): {dst}"
                ));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let val = s.labels.get(&src).unwrap_or("");
                if let Some(caps) = re.captures(val) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    let mut b = s.labels.builder();
                    b.set(dst.clone(), res);
                    s.labels = b.build();
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                out.push(s);
            }
            EVal::Vector(check_unique(out)?)
        }
        "label_join" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            let dst = string_arg(arg(1)?)?;
            let sep = string_arg(arg(2)?)?;
            let srcs: Vec<String> = args[3.min(args.len())..]
                .iter()
                .map(|e| string_arg(e))
                .collect::<Result<_, _>>()?;
            if !crate::bytestr::is_valid_label_name(&dst) {
                return exec_err(format!(
                    "invalid destination label name in label_join(): {dst}"
                ));
            }
            let mut out = Vec::with_capacity(v.len());
            for mut s in v {
                let joined = srcs
                    .iter()
                    .map(|l| s.labels.get(l).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(&sep);
                let mut b = s.labels.builder();
                b.set(dst.clone(), joined);
                s.labels = b.build();
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
                out.push(s);
            }
            EVal::Vector(check_unique(out)?)
        }
        "sort" | "sort_desc" => {
            sort_warning(ev);
            let mut v = vector_arg(ev, arg(0)?, steps)?;
            // Histograms are ignored (dropped) by sort.
            for s in &mut v {
                s.hists.clear();
            }
            v.retain(|s| !s.is_empty());
            if steps.n == 1 {
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
            }
            EVal::Vector(v)
        }
        "sort_by_label" | "sort_by_label_desc" => {
            sort_warning(ev);
            let mut v = vector_arg(ev, arg(0)?, steps)?;
            let names: Vec<String> = args[1.min(args.len())..]
                .iter()
                .map(|e| string_arg(e))
                .collect::<Result<_, _>>()?;
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut ord = std::cmp::Ordering::Equal;
                for n in &names {
                    ord = natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                    if ord.is_ne() {
                        break;
                    }
                }
                if ord.is_eq() {
                    ord = a.labels.cmp(&b.labels);
                }
                if desc { ord.reverse() } else { ord }
            });
            EVal::Vector(v)
        }
        "absent" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            let vals: Vec<Option<f64>> = (0..steps.n)
                .map(|i| (!v.iter().any(|s| s.has_point(i))).then_some(1.0))
                .collect();
            if vals.iter().any(Option::is_some) {
                EVal::Vector(vec![VSeries::new(
                    absent_labels(unparen(arg(0)?)),
                    false,
                    vals,
                )])
            } else {
                EVal::Vector(Vec::new())
            }
        }
        "absent_over_time" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let mut present = vec![false; steps.n];
            for s in &m.series {
                let mut windows = m.windows_of(s);
                for (i, p) in present.iter_mut().enumerate() {
                    let (w, hw) = windows.at(i);
                    *p |= !w.is_empty() || !hw.is_empty();
                }
            }
            let vals: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
            if vals.iter().any(Option::is_some) {
                EVal::Vector(vec![VSeries::new(
                    absent_labels(unparen(arg(0)?)),
                    false,
                    vals,
                )])
            } else {
                EVal::Vector(Vec::new())
            }
        }
        "histogram_quantile" => {
            let q = scalar_arg(ev, arg(0)?, steps)?;
            if let Some(bad) = q.iter().find(|q| q.is_nan() || !(0.0..=1.0).contains(*q)) {
                ev.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    mathx::format_float(*bad)
                ));
            }
            let v = vector_arg(ev, arg(1)?, steps)?;
            EVal::Vector(classic_buckets(
                ev,
                v,
                steps,
                "histogram_quantile",
                |_, i, b| bucket_quantile(q[i], b),
                |ev, l, i, h| native_quantile(ev, l, q[i], h),
            ))
        }
        "histogram_fraction" => {
            let lo = scalar_arg(ev, arg(0)?, steps)?;
            let hi = scalar_arg(ev, arg(1)?, steps)?;
            let v = vector_arg(ev, arg(2)?, steps)?;
            EVal::Vector(classic_buckets(
                ev,
                v,
                steps,
                "histogram_fraction",
                |_, i, b| (bucket_fraction(lo[i], hi[i], b), false),
                |ev, l, i, h| {
                    if h.sum.is_nan() && h.count > 0.0 {
                        ev.info(format!(
                            "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {:?}",
                            l.metric_name().unwrap_or("")
                        ));
                    }
                    histfn::fraction(lo[i], hi[i], h)
                },
            ))
        }
        "histogram_quantiles" => {
            let v = vector_arg(ev, arg(0)?, steps)?;
            let label = string_arg(arg(1)?)?;
            let mut out = Vec::new();
            for e in args.iter().skip(2) {
                let q = scalar_arg(ev, e, steps)?;
                if let Some(bad) = q.iter().find(|q| q.is_nan() || !(0.0..=1.0).contains(*q)) {
                    ev.warn(format!(
                        "quantile value should be between 0 and 1, got {}",
                        mathx::format_float(*bad)
                    ));
                }
                let value = quantile_label(q.first().copied().unwrap_or(f64::NAN));
                let res = classic_buckets(
                    ev,
                    v.clone(),
                    steps,
                    "histogram_quantiles",
                    |_, i, b| bucket_quantile(q[i], b),
                    |ev, l, i, h| native_quantile(ev, l, q[i], h),
                );
                for mut s in res {
                    let mut b = s.labels.builder();
                    b.set(label.clone(), value.clone());
                    s.labels = b.build();
                    out.push(s);
                }
            }
            EVal::Vector(check_unique(out)?)
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            let stats = matches!(name, "histogram_count" | "histogram_sum" | "histogram_avg");
            let outer = ev.stats_hints;
            ev.stats_hints = stats || outer;
            let v = vector_arg(ev, arg(0)?, steps);
            ev.stats_hints = outer;
            let v = v?;
            let mut out = Vec::new();
            for s in v.iter().filter(|s| !s.hists.is_empty()) {
                let mut r = VSeries::new(s.labels.clone(), s.drop_name, vec![None; steps.n]);
                for i in 0..steps.n {
                    if let Some(h) = s.hist(i) {
                        r.vals[i] = Some(match name {
                            "histogram_count" => h.count,
                            "histogram_sum" => h.sum,
                            "histogram_avg" => h.sum / h.count,
                            "histogram_stddev" => histfn::stdvar(h).sqrt(),
                            _ => histfn::stdvar(h),
                        });
                    }
                }
                if !r.is_empty() {
                    ev.drop_name(&mut r);
                    out.push(r);
                }
            }
            EVal::Vector(out)
        }
        "rate" | "increase" | "delta" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let counter = name != "delta";
            let rate = name == "rate";
            if counter && let Some(metric) = &m.metric_name {
                let ok = ["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|suf| metric.ends_with(suf));
                if !ok && !m.series.is_empty() {
                    ev.info(format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
                    ));
                }
            }
            if m.series.iter().all(|s| s.hists.is_empty()) {
                return Ok(EVal::Vector(over_range(
                    ev,
                    &m,
                    steps,
                    false,
                    |w, _, win| extrapolated_rate(w, win, counter, rate),
                )));
            }
            EVal::Vector(over_range_any(ev, &m, steps, false, |ev, s, w, hw, i| {
                let win = m.windows[i];
                if !w.is_empty() && !hw.is_empty() {
                    ev.warn(format!(
                        "encountered a mix of histograms and floats for metric name {:?}",
                        series_metric(s)
                    ));
                    return None;
                }
                if hw.is_empty() {
                    return extrapolated_rate(w, win, counter, rate).map(Owned::F);
                }
                if hw.len() < 2 {
                    return None;
                }
                let mut notes = histfn::RateNotes::default();
                let res = histfn::rate(hw, counter, &mut notes);
                rate_notes(ev, &notes, &series_metric(s));
                let mut h = res?;
                let first = &hw[0];
                let last = &hw[hw.len() - 1];
                let zero = (counter && h.count > 0.0 && first.h.count >= 0.0)
                    .then(|| first.h.count / h.count);
                let factor = extrapolation_factor((first.t, last.t), hw.len(), win, zero, rate);
                h.mul(factor);
                Some(Owned::H(h))
            }))
        }
        "irate" | "idelta" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let rate = name == "irate";
            if m.series.iter().all(|s| s.hists.is_empty()) {
                return Ok(EVal::Vector(over_range(ev, &m, steps, false, |w, _, _| {
                    instant_value(w, rate)
                })));
            }
            EVal::Vector(over_range_any(ev, &m, steps, false, |ev, s, w, hw, _| {
                let last_two = last_two(w, hw);
                match last_two {
                    (Some(Pt::F(a)), Some(Pt::F(b))) => {
                        instant_value(&[*a, *b], rate).map(Owned::F)
                    }
                    (Some(Pt::H(a)), Some(Pt::H(b))) => {
                        let metric = series_metric(s);
                        let gauge = |p: &HPoint| p.h.counter_reset_hint == CounterResetHint::Gauge;
                        if rate && (gauge(a) || gauge(b)) {
                            ev.warn(format!(
                                "this native histogram metric is not a counter: {metric:?}"
                            ));
                        }
                        if !rate && (!gauge(a) || !gauge(b)) {
                            ev.warn(format!(
                                "this native histogram metric is not a gauge: {metric:?}"
                            ));
                        }
                        let mut h = b.h.clone();
                        if !rate || !b.h.detect_reset(&a.h) {
                            match h.sub(&a.h) {
                                Err(_) => {
                                    ev.warn(format!(
                                        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
                                    ));
                                    return None;
                                }
                                Ok(o) if o.custom_bounds_reconciled => ev.info(
                                    "mismatched custom buckets were reconciled during subtraction"
                                        .into(),
                                ),
                                Ok(_) => {}
                            }
                        }
                        h.counter_reset_hint = CounterResetHint::Gauge;
                        h.compact();
                        let interval = b.t - a.t;
                        if interval == 0 {
                            return None;
                        }
                        if rate {
                            h.div(interval as f64 / 1000.0);
                        }
                        Some(Owned::H(h))
                    }
                    (Some(_), Some(_)) => {
                        ev.warn(format!(
                            "encountered a mix of histograms and floats for metric name {:?}",
                            series_metric(s)
                        ));
                        None
                    }
                    _ => None,
                }
            }))
        }
        "deriv" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            EVal::Vector(over_range(ev, &m, steps, false, |w, _, _| {
                (w.len() >= 2).then(|| linear_regression(w, w[0].t).0)
            }))
        }
        "predict_linear" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let d = scalar_arg(ev, arg(1)?, steps)?;
            EVal::Vector(over_range(ev, &m, steps, false, |w, i, _| {
                (w.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(w, steps.t(i));
                    intercept + slope * d[i]
                })
            }))
        }
        "changes" | "resets" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let changes = name == "changes";
            if m.series.iter().any(|s| !s.hists.is_empty()) {
                return Ok(EVal::Vector(over_range_any(
                    ev,
                    &m,
                    steps,
                    false,
                    |_, _, w, hw, _| {
                        let pts = merged(w, hw);
                        let mut n = 0.0;
                        for p in pts.windows(2) {
                            let hit = match (p[0], p[1]) {
                                (Pt::F(a), Pt::F(b)) if changes => {
                                    b.v != a.v && !(b.v.is_nan() && a.v.is_nan())
                                }
                                (Pt::F(a), Pt::F(b)) => b.v < a.v,
                                (Pt::H(a), Pt::H(b)) if changes => {
                                    !crate::eval::hist_equal(&a.h, &b.h)
                                }
                                (Pt::H(a), Pt::H(b)) => b.h.detect_reset(&a.h),
                                _ => true,
                            };
                            if hit {
                                n += 1.0;
                            }
                        }
                        Some(Owned::F(n))
                    },
                )));
            }
            EVal::Vector(over_range(ev, &m, steps, false, |w, _, _| {
                let mut n = 0.0;
                for p in w.windows(2) {
                    let (prev, cur) = (p[0].v, p[1].v);
                    let hit = if changes {
                        cur != prev && !(cur.is_nan() && prev.is_nan())
                    } else {
                        cur < prev
                    };
                    if hit {
                        n += 1.0;
                    }
                }
                Some(n)
            }))
        }
        "avg_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "min_over_time"
        | "max_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let keep = matches!(name, "last_over_time" | "first_over_time");
            let hist_aware = matches!(
                name,
                "avg_over_time"
                    | "sum_over_time"
                    | "count_over_time"
                    | "last_over_time"
                    | "first_over_time"
                    | "present_over_time"
                    | "ts_of_first_over_time"
                    | "ts_of_last_over_time"
            );
            if hist_aware && m.series.iter().any(|s| !s.hists.is_empty()) {
                return Ok(EVal::Vector(over_range_any(
                    ev,
                    &m,
                    steps,
                    keep,
                    |ev, s, w, hw, _| hist_over_time(ev, name, s, w, hw),
                )));
            }
            EVal::Vector(over_range(ev, &m, steps, keep, |w, _, _| {
                Some(match name {
                    "avg_over_time" => avg_over(w),
                    "sum_over_time" => {
                        let (mut s, mut c) = (0.0, 0.0);
                        for x in w {
                            (s, c) = kahan_inc(x.v, s, c);
                        }
                        if s.is_infinite() { s } else { s + c }
                    }
                    "count_over_time" => w.len() as f64,
                    "min_over_time" | "max_over_time" => {
                        let max = name == "max_over_time";
                        let mut r = w[0].v;
                        for x in w {
                            if (max && x.v > r) || (!max && x.v < r) || r.is_nan() {
                                r = x.v;
                            }
                        }
                        r
                    }
                    "ts_of_min_over_time" | "ts_of_max_over_time" => {
                        let max = name == "ts_of_max_over_time";
                        let mut r = w[0];
                        for x in w {
                            if (max && x.v >= r.v) || (!max && x.v <= r.v) || r.v.is_nan() {
                                r = *x;
                            }
                        }
                        r.t as f64 / 1000.0
                    }
                    "ts_of_first_over_time" => w[0].t as f64 / 1000.0,
                    "ts_of_last_over_time" => w[w.len() - 1].t as f64 / 1000.0,
                    "last_over_time" => w[w.len() - 1].v,
                    "first_over_time" => w[0].v,
                    "present_over_time" => 1.0,
                    "stdvar_over_time" => variance_over(w),
                    "stddev_over_time" => variance_over(w).sqrt(),
                    _ if w.iter().any(|x| x.v.is_nan()) => f64::NAN,
                    _ => {
                        let mut vals: Vec<f64> = w.iter().map(|x| x.v).collect();
                        let median = mathx::quantile(0.5, &mut vals);
                        let mut dev: Vec<f64> = vals.iter().map(|x| (x - median).abs()).collect();
                        mathx::quantile(0.5, &mut dev)
                    }
                })
            }))
        }
        "quantile_over_time" => {
            let q = scalar_arg(ev, arg(0)?, steps)?;
            let m = matrix_arg(ev, arg(1)?, steps)?;
            let is_bad = |q: f64| q.is_nan() || !(0.0..=1.0).contains(&q);
            let out = over_range(ev, &m, steps, false, |w, i, _| {
                let mut vals: Vec<f64> = w.iter().map(|x| x.v).collect();
                Some(mathx::quantile(q[i], &mut vals))
            });
            // Warn about the out-of-range quantile last used: the latest such step of the
            // last series that has a sample at one of them.
            let bad = if q.iter().any(|v| is_bad(*v)) {
                m.series.iter().rev().find_map(|s| {
                    // the window cursor only moves forward: scan the steps in order
                    let mut cursor = m.windows_of(s);
                    let mut last = None;
                    for i in (0..steps.n).filter(|&i| is_bad(q[i])) {
                        if !cursor.at(i).0.is_empty() {
                            last = Some(q[i]);
                        }
                    }
                    last
                })
            } else {
                None
            };
            if let Some(b) = bad {
                ev.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    mathx::format_float(b)
                ));
            }
            EVal::Vector(out)
        }
        "double_exponential_smoothing" => {
            let m = matrix_arg(ev, arg(0)?, steps)?;
            let sf = scalar_arg(ev, arg(1)?, steps)?;
            let tf = scalar_arg(ev, arg(2)?, steps)?;
            for i in 0..steps.n {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return exec_err(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        sf[i]
                    ));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return exec_err(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        tf[i]
                    ));
                }
            }
            EVal::Vector(over_range(ev, &m, steps, false, |w, i, _| {
                double_exp_smoothing(w, sf[i], tf[i])
            }))
        }
        "info" => {
            let base = vector_arg(ev, arg(0)?, steps)?;
            let sel = match args.get(1).map(|a| unparen(a)) {
                Some(Expr::VectorSelector(vs)) => Some(vs),
                Some(_) => return Err(Error::Invalid("info() expects a label selector".into())),
                None => None,
            };
            EVal::Vector(info(ev, base, sel, steps)?)
        }
        other => {
            return Err(Error::Invalid(format!(
                "function {other:?} is not supported"
            )));
        }
    };
    Ok(v)
}

/// Formats a quantile for the label `histogram_quantiles` adds (`0.0`, `0.25`, `NaN`).
fn quantile_label(q: f64) -> String {
    if q.is_finite() {
        format!("{q:?}")
    } else {
        mathx::format_float(q)
    }
}

/// Labels identifying the target an info series belongs to.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// `info(v, selector)`: adds the data labels of matching info series (by default
/// `target_info`, joined on `instance` and `job`) to every series of `v`.
fn info(
    ev: &mut Evaluator<'_>,
    base: Vec<VSeries>,
    sel: Option<&promql_parser::parser::VectorSelector>,
    steps: Steps,
) -> Result<Vec<VSeries>, Error> {
    let matchers = crate::engine::info_matchers(sel)?;
    let (name_ms, data_ms): (Vec<_>, Vec<_>) = matchers
        .iter()
        .cloned()
        .partition(|m| m.name() == METRIC_NAME);
    let data = ev.fetched_for(&matchers);
    // Sample timestamps (s) of each info series at each step, honouring lookback.
    let infos = ev.instant_series(&data, None, 0, steps, true);
    let empty_ok = data_ms.iter().all(|m| m.matches_empty());
    let mut out: Vec<VSeries> = Vec::new();
    let mut idx: HashMap<(Labels, bool), usize> = HashMap::new();
    let mut push = |labels: Labels, drop_name: bool, i: usize, v: f64| {
        let k = *idx.entry((labels.clone(), drop_name)).or_insert_with(|| {
            out.push(VSeries::new(labels, drop_name, vec![None; steps.n]));
            out.len() - 1
        });
        out[k].vals[i] = Some(v);
    };
    for s in &base {
        // Base series that are info metrics themselves are passed through.
        let is_info = name_ms.iter().any(crate::engine::is_positive)
            && s.labels
                .metric_name()
                .is_some_and(|n| name_ms.iter().all(|m| m.matches(n)));
        for (i, v) in s.vals.iter().enumerate() {
            let Some(v) = *v else { continue };
            if is_info {
                push(s.labels.clone(), s.drop_name, i, v);
                continue;
            }
            // Matching info series, keeping the newest per info metric name.
            let mut chosen: HashMap<&str, (f64, &Labels)> = HashMap::new();
            if IDENTIFYING_LABELS.iter().any(|l| s.labels.contains(l)) {
                for inf in &infos {
                    let Some(ts) = inf.vals[i] else { continue };
                    if !IDENTIFYING_LABELS
                        .iter()
                        .all(|l| s.labels.get(l) == inf.labels.get(l))
                    {
                        continue;
                    }
                    let name = inf.labels.metric_name().unwrap_or("");
                    match chosen.get(name) {
                        Some((t, _)) if *t >= ts => {}
                        _ => {
                            chosen.insert(name, (ts, &inf.labels));
                        }
                    }
                }
            }
            if chosen.is_empty() {
                if empty_ok {
                    push(s.labels.clone(), s.drop_name, i, v);
                }
                continue;
            }
            let mut b = s.labels.builder();
            let mut added: HashMap<&str, &str> = HashMap::new();
            for (_, info_labels) in chosen.values() {
                for l in info_labels.iter() {
                    let wanted = if data_ms.is_empty() {
                        l.name != METRIC_NAME && !IDENTIFYING_LABELS.contains(&l.name.as_str())
                    } else {
                        data_ms.iter().any(|m| m.name() == l.name)
                    };
                    if !wanted || s.labels.contains(&l.name) {
                        continue;
                    }
                    if let Some(prev) = added.get(l.name.as_str())
                        && *prev != l.value
                    {
                        return exec_err(format!(
                            "conflicting label: {} has values {prev:?} and {:?} in info metrics",
                            l.name, l.value
                        ));
                    }
                    added.insert(&l.name, &l.value);
                    b.set(l.name.clone(), l.value.clone());
                }
            }
            push(b.build(), s.drop_name, i, v);
        }
    }
    Ok(out)
}

/// Compares strings with runs of digits ordered numerically.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut ai, mut bi) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let mut na = String::new();
                while let Some(c) = ai.peek().copied().filter(char::is_ascii_digit) {
                    na.push(c);
                    ai.next();
                }
                let mut nb = String::new();
                while let Some(c) = bi.peek().copied().filter(char::is_ascii_digit) {
                    nb.push(c);
                    bi.next();
                }
                let ta = na.trim_start_matches('0');
                let tb = nb.trim_start_matches('0');
                let ord = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if ord.is_ne() {
                    return ord;
                }
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                ai.next();
                bi.next();
            }
        }
    }
}

struct Bucket {
    upper: f64,
    count: f64,
}

/// Prometheus's `BucketQuantile`; returns the value and whether monotonicity was forced.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(forced) = prepare_buckets(buckets) else {
        return (f64::NAN, false);
    };
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let obs = buckets[buckets.len() - 1].count;
    if obs == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * obs;
    let n = buckets.len() - 1;
    let b = buckets[..n].partition_point(|x| x.count < rank);
    if b == n {
        return (buckets[n - 1].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    let mut start = 0.0;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// The `almost.Equal` comparison Prometheus uses.
pub(crate) fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || a.abs() + b.abs() < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < eps
}

/// Sorts, coalesces and (if needed) makes monotonic the classic buckets; `None` when
/// there is no `+Inf` bucket. Returns whether monotonicity had to be forced.
fn prepare_buckets(buckets: &mut Vec<Bucket>) -> Option<bool> {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.drain(..) {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(b),
        }
    }
    *buckets = merged;
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    Some(forced)
}

/// Fraction of observations between `lower` and `upper` in classic buckets, interpolating
/// linearly inside finite buckets (the first bucket starts at 0 when its bound is positive).
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if prepare_buckets(buckets).is_none() {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].count;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut rank = 0.0;
    let (mut lower_rank, mut upper_rank) = (total, total);
    let (mut lower_set, mut upper_set) = (false, false);
    for (i, b) in buckets.iter().enumerate() {
        let lb = if i == 0 {
            if b.upper > 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            buckets[i - 1].upper
        };
        let ub = b.upper;
        // Position of `v` inside this bucket; infinite-width buckets are not interpolated.
        let interpolate = |v: f64| {
            if lb == f64::NEG_INFINITY {
                b.count
            } else if ub == f64::INFINITY {
                rank
            } else {
                rank + (b.count - rank) * (v - lb) / (ub - lb)
            }
        };
        if !lower_set && lb >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lb >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lb < lower && ub > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lb < upper && ub > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    (upper_rank.min(total) - lower_rank.min(total)) / total
}

/// Groups classic bucket series (`le` label) and applies `f` per group and step;
/// native histograms go through `native` instead. A native histogram whose labels
/// (without `le`) equal a classic group's at the same step yields nothing for either.
fn classic_buckets(
    ev: &mut Evaluator<'_>,
    v: Vec<VSeries>,
    steps: Steps,
    func: &str,
    mut f: impl FnMut(&Labels, usize, &mut Vec<Bucket>) -> (f64, bool),
    mut native: impl FnMut(&mut Evaluator<'_>, &Labels, usize, &FloatHistogram) -> f64,
) -> Vec<VSeries> {
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut idx: HashMap<Labels, usize> = HashMap::new();
    for (j, s) in v.iter().enumerate() {
        if !s.vals.iter().any(Option::is_some) {
            continue;
        }
        let le = s.labels.get("le");
        let upper = le.and_then(|x| x.trim().parse::<f64>().ok());
        let Some(upper) = upper else {
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                le.unwrap_or(""),
                s.labels.metric_name().unwrap_or("")
            ));
            continue;
        };
        let mut b = s.labels.builder();
        b.del("le");
        let key = b.build();
        let g = *idx.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push((upper, j));
    }
    // Native histograms first, remembering the classic groups they collide with.
    let mut suppressed: std::collections::HashSet<(usize, usize)> = Default::default();
    let mut native_out = Vec::new();
    for s in v.iter().filter(|s| !s.hists.is_empty()) {
        let mut b = s.labels.builder();
        b.del("le");
        let key = b.build();
        let mut r = VSeries::new(s.labels.clone(), s.drop_name, vec![None; steps.n]);
        for i in 0..steps.n {
            let Some(h) = s.hist(i) else { continue };
            if let Some(&g) = idx.get(&key)
                && groups[g].1.iter().any(|(_, j)| v[*j].vals[i].is_some())
            {
                ev.warn(format!(
                    "vector contains a mix of classic and native histograms for metric name {:?}",
                    s.labels.metric_name().unwrap_or("")
                ));
                suppressed.insert((g, i));
                continue;
            }
            r.vals[i] = Some(native(ev, &s.labels, i, h));
        }
        if !r.is_empty() {
            ev.drop_name(&mut r);
            native_out.push(r);
        }
    }
    let mut out = Vec::new();
    for (g, (labels, members)) in groups.into_iter().enumerate() {
        let mut vals = vec![None; steps.n];
        for (i, slot) in vals.iter_mut().enumerate() {
            if suppressed.contains(&(g, i)) {
                continue;
            }
            let mut buckets: Vec<Bucket> = members
                .iter()
                .filter_map(|(u, j)| {
                    v[*j].vals[i].map(|c| Bucket {
                        upper: *u,
                        count: c,
                    })
                })
                .collect();
            if buckets.is_empty() {
                continue;
            }
            let (r, forced) = f(&labels, i, &mut buckets);
            if forced {
                ev.info(format!(
                    "input to {func} needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                    labels.metric_name().unwrap_or("")
                ));
            }
            *slot = Some(r);
        }
        if vals.iter().any(Option::is_some) {
            let mut s = VSeries::new(labels, false, vals);
            ev.drop_name(&mut s);
            out.push(s);
        }
    }
    out.extend(native_out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(v: &[(f64, f64)]) -> Vec<Bucket> {
        v.iter()
            .map(|&(upper, count)| Bucket { upper, count })
            .collect()
    }

    #[test]
    fn classic_bucket_quantile_and_fraction() {
        let b = [(1.0, 1.0), (2.0, 3.0), (3.0, 6.0), (f64::INFINITY, 100.0)];
        assert_eq!(bucket_fraction(0.0, 1.5, &mut buckets(&b)), 0.02);
        assert_eq!(
            bucket_fraction(400.0, f64::INFINITY, &mut buckets(&b)),
            0.94
        );
        assert_eq!(bucket_fraction(3.0, 2.0, &mut buckets(&b)), 0.0);
        let (q, forced) = bucket_quantile(
            0.5,
            &mut buckets(&[(1.0, 2.0), (2.0, 4.0), (f64::INFINITY, 4.0)]),
        );
        assert_eq!((q, forced), (1.0, false));
        let (q, forced) = bucket_quantile(
            0.5,
            &mut buckets(&[(1.0, 4.0), (2.0, 2.0), (f64::INFINITY, 4.0)]),
        );
        assert!(forced);
        assert_eq!(q, 0.5);
        assert!(bucket_quantile(0.5, &mut buckets(&[(1.0, 1.0)])).0.is_nan());
    }

    #[test]
    fn rate_extrapolation() {
        let w: Vec<Sample> = (0..=5)
            .map(|i| Sample::new(i * 60_000, i as f64 * 10.0))
            .collect();
        // Samples cover the whole 5m window (-0, 300s]: no extrapolation beyond the edge.
        let r = extrapolated_rate(&w[1..], (0, 300_000), true, true).unwrap();
        assert!((r - 10.0 / 60.0).abs() < 1e-12, "{r}");
        // A counter reset adds the value before the reset.
        let w = [
            Sample::new(0, 5.0),
            Sample::new(60_000, 1.0),
            Sample::new(120_000, 3.0),
        ];
        let inc = extrapolated_rate(&w, (0, 120_000), true, false).unwrap();
        assert_eq!(inc, 3.0);
        assert_eq!(natural_cmp("a10", "a9"), std::cmp::Ordering::Greater);
    }
}
