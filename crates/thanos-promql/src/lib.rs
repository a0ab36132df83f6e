//! A PromQL engine with Prometheus 3.x semantics, used by the querier (and later a ruler).
//!
//! Mirrors Prometheus's `promql` package (`engine.go`, `functions.go`, `quantile.go`),
//! parsing with the `promql-parser` crate. Queries are evaluated over a [`Storage`] in two
//! phases: an asynchronous fetch of every selector's series (concurrently, one select per
//! distinct matcher set, with [`SelectHints`]), then a synchronous evaluation on a
//! blocking thread over the decoded samples (see [`storage`] for the rationale; small
//! evaluations run inline). Range functions slide their windows over each series' samples
//! without copying them, aggregations accumulate in flat per-group arrays, and large
//! nodes split their series (or aggregation steps) between
//! [`EngineOptions::parallelism`] threads with results identical to a single-threaded run.
//!
//! Implemented: instant and range queries; 5m default lookback (configurable); staleness
//! markers; left-open range selectors, lookback and subqueries; `offset`, `@` with
//! `start()`/`end()`; every aggregation (including `limitk`/`limit_ratio`); every binary
//! operator with `on`/`ignoring`/`group_left`/`group_right`/`bool` and the experimental
//! `fill` modifiers; all float functions (rate family with Prometheus 3 extrapolation,
//! `*_over_time`, `histogram_quantile`/`histogram_fraction` over classic buckets, label,
//! time, math, sort and absent functions) and the experimental ones (`info`, `mad_over_time`,
//! `ts_of_*_over_time`, `double_exponential_smoothing`, `sort_by_label*`, `step()`,
//! `range()`, `start()`, `end()`, `min_of`/`max_of`); delayed `__name__` removal (which
//! also drops `__type__`/`__unit__`); and a `max_samples` limit.
//!
//! Duration expressions (`x[5m+step()]`, `offset min_of(step(), 1m)`), which
//! `promql-parser` 0.11 cannot parse, are rewritten into literal durations before parsing
//! when experimental features are enabled ([`Engine::parse_for`]). String literals whose
//! Go byte escapes (`"\xc3\xbf"`, `"\xff"`) the parser would read as Latin-1 characters
//! are decoded the Go way first, so that a name that is not UTF-8 is refused as in
//! Prometheus.
//!
//! Native histograms: series carry float and float-histogram samples (see [`Series`]);
//! selectors, lookback and staleness, `rate`/`increase`/`delta`/`irate`/`idelta` with
//! counter-reset detection, `sum`/`avg`/`count`/`group` and `sum`/`avg`/`count`/`last`/
//! `first`/`present_over_time`, histogram arithmetic (`h ± h`, `h * s`, `s * h`, `h / s`,
//! `h == h`, `h != h`; other combinations drop the sample with Prometheus's info
//! annotation), `histogram_count`/`_sum`/`_avg`/`_quantile`/`_fraction`/`_stddev`/
//! `_stdvar`, and Prometheus 3's warnings for mixed floats/histograms, mixed bucket
//! schemas and conflicting counter resets.
//!
//! Not implemented yet: the experimental histogram trim operators `</` and `>/`, the
//! `anchored`/`smoothed` range modifiers and start timestamps (none parsed by
//! `promql-parser` 0.11).
//!
//! ```
//! use thanos_model::Labels;
//! use thanos_promql::{Engine, MemoryStorage, Value};
//!
//! let mut storage = MemoryStorage::new();
//! let series = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
//! storage.append(&series, 0, 1.0).unwrap();
//! let engine = Engine::default();
//! let result = futures::executor::block_on(engine.instant_query(&storage, "sum(up)", 60_000))
//!     .unwrap();
//! let Value::Vector(v) = result.value else { panic!("vector expected") };
//! assert_eq!(v[0].v, 1.0);
//! ```

mod bytestr;
mod durations;
pub mod engine;
pub mod error;
mod eval;
mod functions;
mod histfn;
mod mathx;
mod par;
pub mod storage;
pub mod value;

pub use engine::{Engine, EngineOptions, QueryParams};
pub use error::{Error, StorageError};
pub use storage::{MemoryStorage, SelectHints, Series, Storage};
pub use value::{HPoint, InstantSample, QueryResult, RangeSeries, Value};
