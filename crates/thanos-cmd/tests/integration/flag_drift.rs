//! Drift test: every flag in the flag tables of `components.md` (§1 common, §3 receive,
//! §4 store, §5 query) exists in our clap command with the same default and visibility, and
//! kingpin `--[no-]` booleans accept the `--no-` form.
//!
//! The docs directory comes from `THANOS_DOCS_DIR`, default `../../../shared/docs` relative
//! to this crate. A missing file fails the test.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// The table says nothing usable (empty or descriptive cell).
    Unknown,
    /// No default (`—`, `required`).
    NoDefault,
    /// This default value (lists joined with `,`).
    Value(String),
}

#[derive(Debug, Clone)]
struct DocFlag {
    commands: &'static [&'static str],
    name: String,
    expect: Expect,
    hidden: bool,
    negatable: bool,
    line: usize,
}

fn components_md() -> (PathBuf, String) {
    let dir = std::env::var_os("THANOS_DOCS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/docs"));
    let path = dir.join("components.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("read {}: {err} (set THANOS_DOCS_DIR)", path.display()));
    (path, text)
}

fn commands_for(section: &str) -> &'static [&'static str] {
    const ALL: &[&str] = &["receive", "store", "query"];
    match section.split('.').next() {
        _ if section == "1.5" => &["receive"],
        Some("1") => ALL,
        Some("3") => &["receive"],
        Some("4") => &["store"],
        Some("5") => &["query"],
        _ => &[],
    }
}

/// Replaces the tail of `previous` by `suffix`: `-key` after `--x-tls-cert` gives
/// `--x-tls-key`; `...config` after `--a.config-file` gives `--a.config`.
fn with_suffix(previous: &str, suffix: &str) -> String {
    if let Some(rest) = suffix.strip_prefix("...") {
        if rest.starts_with('-') {
            return with_suffix(previous, rest);
        }
        let cut = previous.rfind('.').expect("dotted flag before ...suffix");
        return format!("{}.{rest}", &previous[..cut]);
    }
    let cut = previous.rfind('-').expect("dashed flag before -suffix");
    format!("{}{suffix}", &previous[..cut])
}

/// Flags named in a flag cell, with a default given inline as `` `--x` (value) ``.
fn flags_in_cell(cell: &str) -> Vec<(String, bool, Option<String>)> {
    let mut out: Vec<(String, bool, Option<String>)> = Vec::new();
    let mut rest = cell;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let segment = &after[..end];
        rest = &after[end + 1..];
        let mut names = Vec::new();
        for part in segment.split('/') {
            let part = part.trim();
            let previous = names
                .last()
                .cloned()
                .or_else(|| out.last().map(|(name, _, _)| name.clone()));
            let short_flag = part.len() == 2 && part.starts_with('-');
            if part.starts_with("--") {
                names.push(part.to_owned());
            } else if short_flag {
                continue;
            } else if part.starts_with('-') || part.starts_with("...") {
                let Some(previous) = previous else { continue };
                names.push(with_suffix(previous.trim_start_matches("--[no-]"), part));
                if !names.last().is_some_and(|name| name.starts_with("--")) {
                    let last = names.pop().unwrap_or_default();
                    names.push(format!("--{}", last.trim_start_matches('-')));
                }
            }
        }
        if names.is_empty() {
            continue;
        }
        // Inline default: `--flag` (value)
        let mut inline = None;
        if let Some(paren) = rest.trim_start().strip_prefix('(')
            && let Some(close) = paren.find(')')
        {
            inline = Some(paren[..close].replace('`', "").trim().to_owned());
            let skipped = rest.len() - paren.len() + close + 1;
            rest = &rest[skipped..];
        }
        for name in names {
            let negatable = name.starts_with("--[no-]");
            let name = name.replace("[no-]", "");
            if let Some(base) = name.strip_suffix("[-file]") {
                out.push((base.to_owned(), negatable, None));
                out.push((format!("{base}-file"), negatable, None));
            } else {
                out.push((name, negatable, inline.clone()));
            }
        }
    }
    out
}

fn parse_one_default(part: &str) -> Expect {
    let part = part.trim();
    if part.is_empty() {
        return Expect::Unknown;
    }
    if part.starts_with('—') || part == "required" {
        return Expect::NoDefault;
    }
    if part.starts_with('`') {
        let segments: Vec<&str> = part.split('`').skip(1).step_by(2).collect();
        let outside: String = part
            .split('`')
            .step_by(2)
            .collect::<String>()
            .replace(',', "");
        if !outside.trim().is_empty() {
            return Expect::Unknown;
        }
        let joined = segments.join(",");
        return Expect::Value(if joined == "\"\"" {
            String::new()
        } else {
            joined
        });
    }
    let mut words = part.split_whitespace();
    let first = words.next().unwrap_or_default();
    let remainder: Vec<&str> = words.collect();
    if first.starts_with('(') || !(remainder.is_empty() || remainder[0].starts_with('(')) {
        return Expect::Unknown;
    }
    Expect::Value(first.to_owned())
}

fn parse_docs(text: &str) -> Vec<DocFlag> {
    let mut section = String::new();
    let mut flags = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("### ") {
            section = heading
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            continue;
        }
        let commands = commands_for(&section);
        if commands.is_empty() || !line.starts_with('|') || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 2 || cells[0] == "flag" {
            continue;
        }
        let names = flags_in_cell(cells[0]);
        if names.is_empty() {
            continue;
        }
        let hidden = cells[0].contains("hidden")
            || cells
                .get(2)
                .is_some_and(|notes| notes.starts_with("**hidden**"));
        let default_cell = cells[1].replace("**", "");
        let parts: Vec<Expect> = default_cell.split(" / ").map(parse_one_default).collect();
        for (i, (name, negatable, inline)) in names.iter().enumerate() {
            // Inline `(value)` after a flag is its default only when the default column is
            // empty (elsewhere it is a remark such as "(repeatable)").
            let expect =
                if let Some(inline) = inline.as_ref().filter(|_| default_cell.trim().is_empty()) {
                    Expect::Value(inline.clone())
                } else if parts.len() == names.len() {
                    parts[i].clone()
                } else if parts.len() == 1 {
                    parts[0].clone()
                } else {
                    Expect::Unknown
                };
            flags.push(DocFlag {
                commands,
                name: name.trim_start_matches("--").to_owned(),
                expect,
                hidden,
                negatable: *negatable,
                line: index + 1,
            });
        }
    }
    flags
}

fn find_arg<'a>(root: &'a clap::Command, command: &str, long: &str) -> Option<&'a clap::Arg> {
    let matches_long = |arg: &&clap::Arg| {
        arg.get_long() == Some(long)
            || arg
                .get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&long))
    };
    root.find_subcommand(command)
        .and_then(|sub| sub.get_arguments().find(matches_long))
        .or_else(|| root.get_arguments().find(matches_long))
}

#[test]
fn documented_flags_exist_with_the_same_defaults() {
    let (path, text) = components_md();
    let documented = parse_docs(&text);
    assert!(
        documented.len() > 150,
        "only {} flags parsed from {}: the table parser is out of date",
        documented.len(),
        path.display()
    );
    let mut root = thanos_cmd::command();
    root.build();
    let mut problems = Vec::new();
    let mut compared_defaults = 0;
    for flag in &documented {
        for command in flag.commands {
            let Some(arg) = find_arg(&root, command, &flag.name) else {
                problems.push(format!(
                    "line {}: `{command}` has no --{}",
                    flag.line, flag.name
                ));
                continue;
            };
            let ours: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            let ours = (!ours.is_empty()).then(|| ours.join(","));
            let ok = match &flag.expect {
                Expect::Unknown => true,
                Expect::NoDefault => ours.as_deref().is_none_or(str::is_empty),
                Expect::Value(value) if value.is_empty() => {
                    ours.as_deref().is_none_or(str::is_empty)
                }
                Expect::Value(value) => ours.as_deref() == Some(value.as_str()),
            };
            if flag.expect != Expect::Unknown {
                compared_defaults += 1;
            }
            if !ok {
                problems.push(format!(
                    "line {}: `{command} --{}` default is {ours:?}, docs say {:?}",
                    flag.line, flag.name, flag.expect
                ));
            }
            if arg.is_hide_set() != flag.hidden {
                problems.push(format!(
                    "line {}: `{command} --{}` hidden={} but docs say hidden={}",
                    flag.line,
                    flag.name,
                    arg.is_hide_set(),
                    flag.hidden
                ));
            }
            if flag.negatable && !thanos_cmd::is_kingpin_bool(arg) {
                problems.push(format!(
                    "line {}: `{command} --{}` is documented as --[no-] but is not a boolean",
                    flag.line, flag.name
                ));
            }
        }
    }
    assert!(
        compared_defaults > 100,
        "only {compared_defaults} defaults compared"
    );
    assert!(
        problems.is_empty(),
        "flag drift against {}:\n{}",
        path.display(),
        problems.join("\n")
    );
}

#[test]
fn negatable_booleans_accept_the_no_form() {
    let (_, text) = components_md();
    let negatable: Vec<DocFlag> = parse_docs(&text)
        .into_iter()
        .filter(|flag| flag.negatable)
        .collect();
    assert!(
        negatable.len() > 10,
        "only {} --[no-] flags parsed",
        negatable.len()
    );
    for flag in negatable {
        for command in flag.commands {
            let args = thanos_cmd::normalize_args(
                ["thanos", command, &format!("--no-{}", flag.name)]
                    .iter()
                    .map(Into::into)
                    .collect(),
                None,
            );
            let matches = thanos_cmd::command()
                .try_get_matches_from(args)
                .unwrap_or_else(|err| panic!("{command} --no-{}: {err}", flag.name));
            let sub = matches.subcommand_matches(command).expect("subcommand");
            assert_eq!(
                sub.get_one::<bool>(&flag.name),
                Some(&false),
                "{command} --no-{}",
                flag.name
            );
        }
    }
}

#[test]
fn cell_parsing() {
    let names = |cell| {
        flags_in_cell(cell)
            .into_iter()
            .map(|(name, _, _)| name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("`--remote-write.server-tls-cert`/`-key`/`-client-ca`"),
        [
            "--remote-write.server-tls-cert",
            "--remote-write.server-tls-key",
            "--remote-write.server-tls-client-ca"
        ]
    );
    assert_eq!(
        names("`--grpc-client-tls-cert/-key/-ca`"),
        [
            "--grpc-client-tls-cert",
            "--grpc-client-tls-key",
            "--grpc-client-tls-ca"
        ]
    );
    assert_eq!(
        names("`--objstore-parquet.config-file` / `...config`"),
        [
            "--objstore-parquet.config-file",
            "--objstore-parquet.config"
        ]
    );
    assert_eq!(
        names("`--remote-write.server-tls-ciphers`, `...-curves`"),
        [
            "--remote-write.server-tls-ciphers",
            "--remote-write.server-tls-curves"
        ]
    );
    assert_eq!(
        names("`--selector.relabel-config[-file]`"),
        [
            "--selector.relabel-config",
            "--selector.relabel-config-file"
        ]
    );
    let inline =
        flags_in_cell("`--grpc-client-tls-min-version` (1.3), `--grpc-compression` (`none`)");
    assert_eq!(inline[0].2.as_deref(), Some("1.3"));
    assert_eq!(inline[1].2.as_deref(), Some("none"));
    assert!(flags_in_cell("`--[no-]tsdb.wal-compression`")[0].1);
    assert_eq!(parse_one_default("`2m`"), Expect::Value("2m".into()));
    assert_eq!(parse_one_default("0 (→32)"), Expect::Value("0".into()));
    assert_eq!(parse_one_default("`\"\"`"), Expect::Value(String::new()));
    assert_eq!(parse_one_default("— (≥1 required)"), Expect::NoDefault);
    assert_eq!(parse_one_default("Go defaults"), Expect::Unknown);
    assert_eq!(parse_one_default("(PromQL default 5m)"), Expect::Unknown);
    assert_eq!(
        parse_one_default("`external_labels`, `store_type`"),
        Expect::Value("external_labels,store_type".into())
    );
}
