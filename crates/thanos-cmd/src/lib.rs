//! The `thanos` command line (mirrors Thanos `cmd/thanos`): clap definitions of every flag
//! of `receive`, `store` and `query` with Thanos' names and defaults, argument
//! normalisation for the thin `thanos-<component>` binaries, logging setup, and one `run`
//! per component.
//!
//! Each subcommand parses and validates its flags completely (reads the config files,
//! loads the TLS material) before starting, then runs its component until SIGTERM/SIGINT.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

mod alloc;
pub mod flags;
pub mod logging;
pub mod query;
pub mod receive;
pub mod receive_blocks;
pub mod receive_router;
mod runtime;
pub mod store;

use flags::global::GlobalFlags;
use flags::query::QueryFlags;
use flags::receive::ReceiveFlags;
use flags::store::StoreFlags;

/// `thanos [global flags] <component> [flags]`.
#[derive(Debug, Parser)]
#[command(
    name = "thanos",
    version,
    about = "A block storage based long-term storage for Prometheus (Rust reimplementation).",
    propagate_version = true,
    subcommand_required = true
)]
pub struct Cli {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub command: Command,
}

/// The components.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accept Prometheus remote write API requests and write to local tsdb.
    Receive(Box<ReceiveFlags>),
    /// Store node giving access to blocks in a bucket provider.
    Store(Box<StoreFlags>),
    /// Query node exposing PromQL enabled Query API with data retrieved from multiple store nodes.
    Query(Box<QueryFlags>),
}

/// A component, used by the thin `thanos-<component>` binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `thanos receive`.
    Receive,
    /// `thanos store`.
    Store,
    /// `thanos query`.
    Query,
}

impl Component {
    /// The subcommand name.
    pub fn name(self) -> &'static str {
        match self {
            Component::Receive => "receive",
            Component::Store => "store",
            Component::Query => "query",
        }
    }
}

/// The clap command (for `--help` rendering and the flag drift test).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Turns the process arguments into `thanos <component> …` form: for a thin binary the
/// component is inserted (and a repeated component name as first argument, as container
/// images pass it, is dropped); kingpin-style `--no-<flag>` booleans are rewritten.
pub fn normalize_args(args: Vec<OsString>, component: Option<Component>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let program = args.next().unwrap_or_else(|| OsString::from("thanos"));
    let mut rest: Vec<OsString> = args.collect();
    let mut out = vec![program];
    if let Some(component) = component {
        if rest.first().is_some_and(|first| first == component.name()) {
            rest.remove(0);
        }
        out.push(component.name().into());
    }
    out.extend(rest);
    rewrite_negated_bools(out, &command())
}

/// Rewrites `--no-<flag>` into `--<flag>=false` for every boolean flag of the selected
/// subcommand (and the global ones), as kingpin generates `--no-` negations for bools.
pub fn rewrite_negated_bools(args: Vec<OsString>, command: &clap::Command) -> Vec<OsString> {
    let subcommand = args
        .iter()
        .skip(1)
        .filter_map(|arg| arg.to_str())
        .find_map(|arg| command.find_subcommand(arg));
    let is_bool = |name: &str| {
        let bool_arg = |arg: &clap::Arg| arg.get_long() == Some(name) && is_kingpin_bool(arg);
        command.get_arguments().any(bool_arg)
            || subcommand.is_some_and(|sub| sub.get_arguments().any(bool_arg))
    };
    let mut after_separator = false;
    args.into_iter()
        .map(|arg| {
            if after_separator {
                return arg;
            }
            if arg == "--" {
                after_separator = true;
                return arg;
            }
            match arg.to_str().and_then(|text| text.strip_prefix("--no-")) {
                Some(name) if is_bool(name) => OsString::from(format!("--{name}=false")),
                _ => arg,
            }
        })
        .collect()
}

/// Whether `arg` is declared like a kingpin boolean: an optional `=true|false` value with a
/// boolean default.
pub fn is_kingpin_bool(arg: &clap::Arg) -> bool {
    let optional_value = arg
        .get_num_args()
        .is_some_and(|range| range.min_values() == 0 && range.max_values() == 1);
    let bool_default = matches!(
        arg.get_default_values(),
        [value] if value == "true" || value == "false"
    );
    optional_value && bool_default
}

/// Entry point of all binaries: parses `std::env::args_os()` (see [`normalize_args`]),
/// sets up logging, validates the component's flags and runs it.
pub fn main(component: Option<Component>) -> ExitCode {
    let args = normalize_args(std::env::args_os().collect(), component);
    let cli = match command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    alloc::configure(matches!(cli.command, Command::Receive(_)));
    logging::init(&cli.global);
    let name = match &cli.command {
        Command::Receive(_) => "receive",
        Command::Store(_) => "store",
        Command::Query(_) => "query",
    };
    let result = check_global(&cli.global).and_then(|()| match &cli.command {
        Command::Receive(flags) => receive::run(flags),
        Command::Store(flags) => store::run(flags),
        Command::Query(flags) => query::run(flags),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("thanos {name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Validates the global flags: the tracing config is read (not yet applied).
fn check_global(global: &GlobalFlags) -> anyhow::Result<()> {
    let tracing_config = flags::objstore::read_pair(
        "tracing.config",
        global.tracing_config_file.as_deref(),
        global.tracing_config.as_deref(),
    )?;
    if tracing_config.is_some() {
        tracing::warn!(
            "tracing configuration accepted but trace export is not implemented; no spans are exported"
        );
    }
    if global.enable_auto_gomemlimit {
        tracing::debug!("--enable-auto-gomemlimit is Go-specific and has no effect");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn thin_binaries_accept_both_forms() {
        let plain = normalize_args(
            os(&["thanos-store", "--data-dir", "x"]),
            Some(Component::Store),
        );
        let repeated = normalize_args(
            os(&["thanos-store", "store", "--data-dir", "x"]),
            Some(Component::Store),
        );
        assert_eq!(plain, os(&["thanos-store", "store", "--data-dir", "x"]));
        assert_eq!(repeated, plain);
        let full = normalize_args(os(&["thanos", "store", "--data-dir", "x"]), None);
        assert_eq!(full, os(&["thanos", "store", "--data-dir", "x"]));
    }

    #[test]
    fn negated_bools_are_rewritten_only_for_bools_of_the_subcommand() {
        let args = normalize_args(
            os(&[
                "thanos",
                "store",
                "--no-cache-index-header",
                "--no-data-dir",
                "--no-enable-auto-gomemlimit",
            ]),
            None,
        );
        assert_eq!(
            args,
            os(&[
                "thanos",
                "store",
                "--cache-index-header=false",
                "--no-data-dir",
                "--enable-auto-gomemlimit=false"
            ])
        );
        // --tsdb.wal-compression exists on receive only.
        let args = normalize_args(os(&["thanos", "store", "--no-tsdb.wal-compression"]), None);
        assert_eq!(args[2], "--no-tsdb.wal-compression");
    }

    #[test]
    fn command_is_consistent() {
        command().debug_assert();
    }
}
