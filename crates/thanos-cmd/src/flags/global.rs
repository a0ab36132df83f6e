//! Flags every subcommand accepts (components.md §1.1).

use std::path::PathBuf;

use clap::{ArgAction, Args, ValueEnum};

/// `--log.level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Everything, including debug messages.
    Debug,
    /// Informational messages and above.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// `--log.format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` lines.
    Logfmt,
    /// One JSON object per line.
    Json,
    /// Accepted for compatibility; logs are written as logfmt to stderr.
    Journald,
}

/// Logging, tracing and Go runtime flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global flags")]
pub struct GlobalFlags {
    /// Log filtering level.
    #[arg(
        id = "log.level",
        long = "log.level",
        value_enum,
        default_value = "info",
        global = true
    )]
    pub log_level: LogLevel,

    /// Log format to use.
    #[arg(
        id = "log.format",
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        global = true
    )]
    pub log_format: LogFormat,

    /// Path to a YAML file with the tracing configuration (accepted; tracing export is not
    /// implemented yet, the file is only read).
    #[arg(
        id = "tracing.config-file",
        long = "tracing.config-file",
        value_name = "FILE",
        global = true,
        conflicts_with = "tracing.config"
    )]
    pub tracing_config_file: Option<PathBuf>,

    /// Alternative to --tracing.config-file: the tracing YAML itself.
    #[arg(
        id = "tracing.config",
        long = "tracing.config",
        value_name = "YAML",
        global = true
    )]
    pub tracing_config: Option<String>,

    /// Go-only (GOMEMLIMIT); accepted and ignored so Thanos command lines keep working.
    #[arg(
        id = "enable-auto-gomemlimit",
        long = "enable-auto-gomemlimit",
        global = true,
        default_value = "false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub enable_auto_gomemlimit: bool,

    /// Go-only (GOMEMLIMIT ratio); accepted and ignored.
    #[arg(
        id = "auto-gomemlimit.ratio",
        long = "auto-gomemlimit.ratio",
        global = true,
        default_value = "0.9"
    )]
    pub auto_gomemlimit_ratio: f64,
}
