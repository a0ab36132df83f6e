//! Errors of the model crate.

/// Errors raised while building model values from untrusted input.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelError {
    /// Two labels in one set share a name.
    #[error("duplicate label name {0:?}")]
    DuplicateLabelName(String),
    /// A label has an empty name.
    #[error("empty label name")]
    EmptyLabelName,
    /// A regular expression in a matcher does not compile.
    #[error("invalid regular expression {regex:?} in matcher for label {name:?}: {reason}")]
    InvalidRegex {
        /// Label name of the matcher.
        name: String,
        /// The regex as given.
        regex: String,
        /// What the regex compiler said.
        reason: String,
    },
}
