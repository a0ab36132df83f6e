//! Errors returned by the engine.

/// An error from parsing, fetching or evaluating a query.
///
/// Messages follow Prometheus's wording so that API clients see the same text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text does not parse.
    #[error("parse error: {0}")]
    Parse(String),
    /// The query parses but is not valid for the requested evaluation.
    #[error("{0}")]
    Invalid(String),
    /// Evaluation failed (for example duplicate label sets or bad parameters).
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples in memory than the configured limit.
    #[error(
        "query processing would load too many samples into memory in query execution (limit {limit})"
    )]
    TooManySamples {
        /// The configured `max_samples`.
        limit: usize,
    },
    /// The storage could not serve a selector.
    #[error("select {selector}: {source}")]
    Storage {
        /// The selector that was being fetched.
        selector: String,
        /// The storage's error.
        source: StorageError,
    },
    /// The evaluation task was cancelled or panicked.
    #[error("evaluation task: {0}")]
    Task(String),
}

/// An error reported by a [`crate::Storage`] implementation.
pub type StorageError = Box<dyn std::error::Error + Send + Sync + 'static>;
