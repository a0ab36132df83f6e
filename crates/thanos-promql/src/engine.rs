//! The engine: options, query entry points and the preparation (fetch) phase.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::try_join_all;
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};
use thanos_model::cache::TextCache;
use thanos_model::{MatchType, Matcher};

use crate::error::Error;
use crate::eval::{Evaluator, QueryTimes};
use crate::storage::{SelectHints, Series, Storage};
use crate::value::QueryResult;

/// Engine settings (the `--query.*` flags of Prometheus/Thanos).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (ms); default 5m.
    pub lookback_delta_ms: i64,
    /// Maximum number of samples one node of the evaluation may hold (`--query.max-samples`).
    pub max_samples: usize,
    /// Step of subqueries written without one (`x[5m:]`), in ms; default 1m.
    pub default_subquery_step_ms: i64,
    /// Allow experimental functions (`--enable-feature=promql-experimental-functions`).
    pub enable_experimental_functions: bool,
    /// Remove `__name__` only at the end of evaluation (`promql-delayed-name-removal`).
    pub delayed_name_removal: bool,
    /// Threads one query may use to evaluate a large node (independent series are split
    /// between them; results do not depend on it). Default: the available parallelism;
    /// 0 or 1 evaluates every query on a single thread.
    pub parallelism: usize,
    /// Smallest node (roughly in sample visits) split between threads. Measured on a
    /// 2-core machine shared with other processes: splitting nodes of a few hundred
    /// thousand visits (1–5 ms) was slower than one thread (thread start-up, a second
    /// malloc arena, waiting for a busy core); nodes of millions of visits gain.
    pub parallel_min_work: usize,
}

impl EngineOptions {
    /// Threads to use for a node of `work` sample visits.
    pub(crate) fn threads_for(&self, work: usize) -> usize {
        if work < self.parallel_min_work {
            1
        } else {
            self.parallelism.max(1)
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            default_subquery_step_ms: 60 * 1000,
            enable_experimental_functions: false,
            delayed_name_removal: false,
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            parallel_min_work: 2_000_000,
        }
    }
}

/// Parameters of one evaluation: an instant query has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParams {
    /// First evaluation timestamp (ms).
    pub start: i64,
    /// Last evaluation timestamp (ms).
    pub end: i64,
    /// Resolution step (ms); ignored for instant queries, must be positive otherwise.
    pub step: i64,
    /// True for an instant query (result is a vector, scalar, string or matrix for a
    /// range-vector expression); false for a range query (result is a matrix).
    pub instant: bool,
    /// Per-query lookback delta in ms (the API's `lookback_delta`); `None` uses the
    /// engine's [`EngineOptions::lookback_delta_ms`].
    pub lookback_delta_ms: Option<i64>,
}

impl QueryParams {
    /// An instant query at `t` (ms).
    pub fn instant(t: i64) -> Self {
        Self {
            start: t,
            end: t,
            step: 1,
            instant: true,
            lookback_delta_ms: None,
        }
    }

    /// A range query.
    pub fn range(start: i64, end: i64, step: i64) -> Self {
        Self {
            start,
            end,
            step,
            instant: false,
            lookback_delta_ms: None,
        }
    }

    /// Overrides the engine's lookback delta for this query (`ms > 0`).
    pub fn with_lookback_delta(mut self, ms: i64) -> Self {
        self.lookback_delta_ms = (ms > 0).then_some(ms);
        self
    }

    /// The lookback delta in effect for this query.
    pub(crate) fn lookback(&self, opts: &EngineOptions) -> i64 {
        self.lookback_delta_ms.unwrap_or(opts.lookback_delta_ms)
    }
}

/// A PromQL engine; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Engine {
    opts: Arc<EngineOptions>,
    /// Parsed expressions by query text: dashboards send the same queries over and over
    /// with new time ranges, and parsing compiles every regex matcher, which costs more
    /// than evaluating a small query. 256 queries of up to 4 KiB.
    parsed: Arc<TextCache<Expr>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(EngineOptions::default())
    }
}

/// Fetched series per selector, keyed by [`selector_key`].
pub(crate) type Fetched = HashMap<String, Arc<Vec<Series>>>;

impl Engine {
    /// Creates an engine with the given options.
    pub fn new(opts: EngineOptions) -> Self {
        Self {
            opts: Arc::new(opts),
            parsed: Arc::new(TextCache::new(256, 4096)),
        }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Parses `query` (errors read like Prometheus's `parse error: …`) and rejects
    /// experimental functions and aggregations unless they are enabled.
    pub fn parse(&self, query: &str) -> Result<Expr, Error> {
        self.parsed.get_or_try_insert_with(query, || {
            let expr = parser::parse(&crate::bytestr::normalize(query)).map_err(Error::Parse)?;
            if !self.opts.enable_experimental_functions {
                check_no_experimental(&expr)?;
            }
            Ok(expr)
        })
    }

    /// Parses `query` for an evaluation with `params`: with experimental features enabled,
    /// duration expressions (`[5m+step()]`, `offset (1m*2)`) are first rewritten into
    /// literal durations, since they depend on the query's step and range.
    pub fn parse_for(&self, query: &str, params: &QueryParams) -> Result<Expr, Error> {
        if self.opts.enable_experimental_functions {
            self.parse(&crate::durations::rewrite(query, params)?)
        } else {
            self.parse(query)
        }
    }

    /// Evaluates `query` at time `t` (ms).
    pub async fn instant_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        t: i64,
    ) -> Result<QueryResult, Error> {
        let params = QueryParams::instant(t);
        let expr = self.parse_for(query, &params)?;
        self.exec(storage, expr, params).await
    }

    /// Evaluates `query` from `start` to `end` (ms) every `step` ms.
    pub async fn range_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, Error> {
        let params = QueryParams::range(start, end, step);
        let expr = self.parse_for(query, &params)?;
        self.exec(storage, expr, params).await
    }

    /// Evaluates a parsed expression (from [`Engine::parse`], possibly rewritten):
    /// fetches every selector's series from `storage` concurrently, then evaluates on a
    /// blocking thread when called inside a Tokio runtime (inline otherwise).
    pub async fn exec(
        &self,
        storage: &dyn Storage,
        expr: Expr,
        params: QueryParams,
    ) -> Result<QueryResult, Error> {
        if !params.instant {
            if params.step <= 0 {
                return Err(Error::Invalid(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer"
                        .into(),
                ));
            }
            if params.end < params.start {
                return Err(Error::Invalid(
                    "end timestamp must not be before start time".into(),
                ));
            }
        }
        let mut collector = Collector {
            opts: &self.opts,
            params: &params,
            plan: Plan::default(),
        };
        collector.collect(&expr, (params.start, params.end), None)?;
        let plan = collector.plan;
        let has_subquery = plan.has_subquery;
        let fetches = plan
            .selectors
            .into_iter()
            .map(|(key, (matchers, hints))| async move {
                storage
                    .select(&matchers, &hints)
                    .await
                    .map(|s| (key.clone(), Arc::new(s)))
                    .map_err(|source| Error::Storage {
                        selector: key,
                        source,
                    })
            });
        let fetched: Fetched = try_join_all(fetches).await?.into_iter().collect();
        let series: usize = fetched.values().map(|s| s.len()).sum();
        let samples: usize = fetched
            .values()
            .flat_map(|s| s.iter())
            .map(|s| s.samples.len() + s.histograms.len())
            .sum();
        tracing::debug!(
            selectors = fetched.len(),
            series,
            samples,
            "promql selectors fetched"
        );
        let times = QueryTimes {
            start: params.start,
            end: params.end,
            step: if params.instant { 1 } else { params.step },
            instant: params.instant,
            lookback: params.lookback(&self.opts),
        };
        // Small evaluations (well under a millisecond) run inline: handing them to the
        // blocking pool and back costs more than they do. Subqueries multiply the work
        // beyond what the fetched data shows, so they always go to the pool.
        let small = samples + series * times.n_steps() <= INLINE_EVAL_MAX_WORK && !has_subquery;
        let opts = Arc::clone(&self.opts);
        let run = move || Evaluator::new(&opts, &fetched, times).run(&expr);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if !small => handle
                .spawn_blocking(run)
                .await
                .map_err(|e| Error::Task(e.to_string()))?,
            _ => run(),
        }
    }
}

/// Largest evaluation (fetched samples plus series × steps) run on the calling task
/// instead of a blocking thread.
const INLINE_EVAL_MAX_WORK: usize = 20_000;

#[derive(Default)]
struct Plan {
    selectors: HashMap<String, (Vec<Matcher>, SelectHints)>,
    /// The expression contains a subquery.
    has_subquery: bool,
}

/// Offset of a selector or subquery in ms (positive looks back).
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// The fixed evaluation time of an `@` modifier in ms.
pub(crate) fn at_ms(at: &Option<AtModifier>, query_start: i64, query_end: i64) -> Option<i64> {
    match at {
        None => None,
        Some(AtModifier::Start) => Some(query_start),
        Some(AtModifier::End) => Some(query_end),
        Some(AtModifier::At(t)) => Some(match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }),
    }
}

/// Converts a parsed selector into our matchers (Prometheus-anchored regexes).
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, Error> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::Invalid(
            "`or` inside label matchers is not supported by PromQL".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(
            thanos_model::labels::METRIC_NAME,
            name.clone(),
        ));
    }
    for m in &vs.matchers.matchers {
        let t = match m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::RegexMatch,
            MatchOp::NotRe(_) => MatchType::RegexNoMatch,
        };
        out.push(
            Matcher::new(t, m.name.clone(), m.value.clone())
                .map_err(|e| Error::Parse(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Matchers selecting the info series of `info(v, selector)`: the selector's matchers,
/// with `__name__="target_info"` when it names no metric and `__name__=~".+_info"` when
/// it only excludes names.
pub(crate) fn info_matchers(vs: Option<&VectorSelector>) -> Result<Vec<Matcher>, Error> {
    let mut ms = match vs {
        Some(vs) => selector_matchers(vs)?,
        None => Vec::new(),
    };
    let names: Vec<&Matcher> = ms
        .iter()
        .filter(|m| m.name() == thanos_model::labels::METRIC_NAME)
        .collect();
    if names.is_empty() {
        ms.push(Matcher::equal(
            thanos_model::labels::METRIC_NAME,
            "target_info",
        ));
    } else if !names.iter().any(|m| is_positive(m)) {
        // Only exclusions: info metrics are still the `*_info` ones.
        ms.push(
            Matcher::new(
                MatchType::RegexMatch,
                thanos_model::labels::METRIC_NAME,
                ".+_info",
            )
            .map_err(|e| Error::Invalid(e.to_string()))?,
        );
    }
    Ok(ms)
}

/// True for `=` and `=~` matchers.
pub(crate) fn is_positive(m: &Matcher) -> bool {
    matches!(m.match_type(), MatchType::Equal | MatchType::RegexMatch)
}

/// The key under which a selector's fetched series are stored.
pub(crate) fn selector_key(ms: &[Matcher]) -> String {
    let mut parts: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
    parts.sort();
    parts.join(",")
}

/// Walks an expression and records, per selector, the time range it can read.
struct Collector<'a> {
    opts: &'a EngineOptions,
    params: &'a QueryParams,
    plan: Plan,
}

impl Collector<'_> {
    fn add_selector(
        &mut self,
        vs: &VectorSelector,
        (start, end): (i64, i64),
        range: Option<i64>,
        func: Option<&str>,
    ) -> Result<(), Error> {
        let (s, e) = match at_ms(&vs.at, self.params.start, self.params.end) {
            Some(t) => (t, t),
            None => (start, end),
        };
        let off = offset_ms(&vs.offset);
        let back = range.unwrap_or(self.params.lookback(self.opts));
        let ms = selector_matchers(vs)?;
        let key = selector_key(&ms);
        let hints = SelectHints {
            start: s - off - back,
            end: e - off,
            step: if self.params.instant {
                0
            } else {
                self.params.step
            },
            range: range.unwrap_or(0),
            func: func.map(str::to_string),
        };
        match self.plan.selectors.get_mut(&key) {
            Some((_, h)) => {
                h.start = h.start.min(hints.start);
                h.end = h.end.max(hints.end);
                h.range = h.range.max(hints.range);
            }
            None => {
                self.plan.selectors.insert(key, (ms, hints));
            }
        }
        Ok(())
    }

    fn collect(&mut self, expr: &Expr, span: (i64, i64), func: Option<&str>) -> Result<(), Error> {
        match expr {
            Expr::VectorSelector(vs) => self.add_selector(vs, span, None, func),
            Expr::MatrixSelector(m) => {
                self.add_selector(&m.vs, span, Some(m.range.as_millis() as i64), func)
            }
            Expr::Subquery(sq) => {
                self.plan.has_subquery = true;
                let (s, e) = match at_ms(&sq.at, self.params.start, self.params.end) {
                    Some(t) => (t, t),
                    None => span,
                };
                let off = offset_ms(&sq.offset);
                let step = sq
                    .step
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(self.opts.default_subquery_step_ms);
                let range = sq.range.as_millis() as i64;
                self.collect(&sq.expr, (s - off - range - step, e - off), None)
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.collect(p, span, None)?;
                }
                self.collect(&a.expr, span, None)
            }
            Expr::Unary(u) => self.collect(&u.expr, span, None),
            Expr::Binary(b) => {
                self.collect(&b.lhs, span, None)?;
                self.collect(&b.rhs, span, None)
            }
            Expr::Paren(p) => self.collect(&p.expr, span, func),
            Expr::Call(c) if c.func.name == "info" => {
                if let Some(a) = c.args.args.first() {
                    self.collect(a, span, Some("info"))?;
                }
                let sel = match c.args.args.get(1).map(|a| a.as_ref()) {
                    Some(Expr::VectorSelector(vs)) => Some(vs),
                    _ => None,
                };
                let ms = info_matchers(sel)?;
                let key = selector_key(&ms);
                let hints = SelectHints {
                    start: span.0 - self.params.lookback(self.opts),
                    end: span.1,
                    step: if self.params.instant {
                        0
                    } else {
                        self.params.step
                    },
                    range: 0,
                    func: Some("info".into()),
                };
                match self.plan.selectors.get_mut(&key) {
                    Some((_, h)) => {
                        h.start = h.start.min(hints.start);
                        h.end = h.end.max(hints.end);
                    }
                    None => {
                        self.plan.selectors.insert(key, (ms, hints));
                    }
                }
                Ok(())
            }
            Expr::Call(c) => {
                for a in &c.args.args {
                    self.collect(a, span, Some(c.func.name))?;
                }
                Ok(())
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
        }
    }
}

fn check_no_experimental(expr: &Expr) -> Result<(), Error> {
    let mut err = None;
    visit(expr, &mut |e| {
        if let Expr::Call(c) = e
            && c.func.experimental
            && err.is_none()
        {
            err = Some(Error::Parse(format!(
                "function {:?} is not enabled",
                c.func.name
            )));
        }
        if let Expr::Aggregate(a) = e {
            let id = a.op.id();
            if (id == parser::token::T_LIMITK || id == parser::token::T_LIMIT_RATIO)
                && err.is_none()
            {
                err = Some(Error::Parse(format!(
                    "limitk() and limit_ratio() are experimental and must be enabled with --enable-feature=promql-experimental-functions ({})",
                    a.op
                )));
            }
        }
    });
    err.map_or(Ok(()), Err)
}

/// Calls `f` on every node of `expr`, parents first.
pub(crate) fn visit(expr: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(expr);
    match expr {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                visit(p, f);
            }
            visit(&a.expr, f);
        }
        Expr::Unary(u) => visit(&u.expr, f),
        Expr::Binary(b) => {
            visit(&b.lhs, f);
            visit(&b.rhs, f);
        }
        Expr::Paren(p) => visit(&p.expr, f),
        Expr::Subquery(s) => visit(&s.expr, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                visit(a, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cache_returns_the_same_expression_and_keeps_no_errors() {
        let engine = Engine::default();
        let q = r#"sum by (job) (rate(x{a=~"b.*"}[5m]))"#;
        let first = engine.parse(q).unwrap();
        assert_eq!(engine.parsed.len(), 1);
        assert_eq!(engine.parse(q).unwrap().to_string(), first.to_string());
        assert_eq!(engine.parsed.len(), 1, "a hit adds nothing");
        assert!(engine.parse("sum(").is_err());
        assert_eq!(engine.parsed.len(), 1, "errors are not kept");
        // Experimental functions are refused on every parse, cached or not.
        assert!(engine.parse("sort_by_label(x, \"a\")").is_err());
        assert!(engine.parse("sort_by_label(x, \"a\")").is_err());
    }
}
