//! Query results.

use thanos_model::histogram::FloatHistogram;
use thanos_model::{Labels, Sample};

/// A native-histogram sample: a timestamp and a float histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HPoint {
    /// Timestamp (ms).
    pub t: i64,
    /// The histogram.
    pub h: FloatHistogram,
}

/// One element of an instant vector: a float value or a native histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// Series labels.
    pub labels: Labels,
    /// Evaluation timestamp (ms).
    pub t: i64,
    /// Float value (0 and meaningless when `h` is set).
    pub v: f64,
    /// The native histogram, when the sample is one.
    pub h: Option<FloatHistogram>,
}

/// One series of a range vector (matrix): float points and histogram points, each in
/// increasing time order (a timestamp appears in at most one of them).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Series labels.
    pub labels: Labels,
    /// Float points in increasing time order.
    pub samples: Vec<Sample>,
    /// Native-histogram points in increasing time order.
    pub histograms: Vec<HPoint>,
}

/// The value of an evaluated expression, as in Prometheus's query API.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp (ms).
    Scalar {
        /// Timestamp (ms).
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a timestamp (ms).
    String {
        /// Timestamp (ms).
        t: i64,
        /// Value.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<InstantSample>),
    /// A range vector; range queries always return one, sorted by labels.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The Prometheus API name of the value's type (`scalar`, `string`, `vector`, `matrix`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query result with the annotations collected during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result value.
    pub value: Value,
    /// Warning annotations (`PromQL warning: …`).
    pub warnings: Vec<String>,
    /// Info annotations (`PromQL info: …`).
    pub infos: Vec<String>,
}
