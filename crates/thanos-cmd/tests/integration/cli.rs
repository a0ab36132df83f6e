//! Runs the real binaries: help output, flag errors, validation and the thin binaries.

use std::process::{Command, Output};

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");
const THANOS_STORE: &str = env!("CARGO_BIN_EXE_thanos-store");
const THANOS_RECEIVE: &str = env!("CARGO_BIN_EXE_thanos-receive");
const THANOS_QUERY: &str = env!("CARGO_BIN_EXE_thanos-query");

const FS_BUCKET: &str = "type: FILESYSTEM\nconfig:\n  directory: /tmp/thanos-cmd-test-bucket\n";

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("run {binary}: {err}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_key_flags_and_hides_hidden_ones() {
    let cases: [(&str, &[&str], &[&str]); 3] = [
        (
            "receive",
            &[
                "--remote-write.address",
                "--label",
                "--tsdb.path",
                "--receive.hashrings-file",
                "--http-address",
                "--grpc-address",
                "--objstore.config-file",
                "--log.level",
            ],
            &["--tsdb.min-block-duration", "--receive.limits-config-file"],
        ),
        (
            "store",
            &[
                "--data-dir",
                "--objstore.config-file",
                "--index-cache-size",
                "--sync-block-duration",
                "--store.limits.request-series",
            ],
            &["--debug.series-batch-size", "--store.caching-bucket.config"],
        ),
        (
            "query",
            &[
                "--endpoint",
                "--query.replica-label",
                "--grpc-client-tls-secure",
                "--query.timeout",
                "--web.route-prefix",
            ],
            &["--grpc.proxy-strategy", "--endpoint.info-timeout"],
        ),
    ];
    for (component, shown, hidden) in cases {
        let output = run(THANOS, &[component, "--help"]);
        assert!(
            output.status.success(),
            "{component} --help: {}",
            stderr(&output)
        );
        let help = stdout(&output);
        for flag in shown {
            assert!(help.contains(flag), "{component} --help lacks {flag}");
        }
        for flag in hidden {
            assert!(
                !help.contains(&format!("{flag} "))
                    && !help.contains(&format!("{flag}\n"))
                    && !help.contains(&format!("{flag} <")),
                "{component} --help shows hidden {flag}"
            );
        }
    }
    let top = stdout(&run(THANOS, &["--help"]));
    for component in ["receive", "store", "query"] {
        assert!(top.contains(component), "thanos --help lacks {component}");
    }
}

#[test]
fn version_is_printed() {
    let output = run(THANOS, &["--version"]);
    assert!(output.status.success());
    assert!(
        stdout(&output).starts_with("thanos "),
        "{}",
        stdout(&output)
    );
}

#[test]
fn unknown_flag_is_named() {
    let output = run(THANOS, &["store", "--no-such-flag=1"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--no-such-flag"),
        "{}",
        stderr(&output)
    );
    let output = run(THANOS, &["frobnicate"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("frobnicate"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn malformed_values_name_the_flag() {
    for (args, flag) in [
        (
            &["store", "--sync-block-duration=1.5h"][..],
            "--sync-block-duration",
        ),
        (
            &["receive", "--tsdb.retention=15days"][..],
            "--tsdb.retention",
        ),
        (
            &["store", "--index-cache-size=250kB"][..],
            "--index-cache-size",
        ),
        (
            &["query", "--grpc-server-tls-min-version=1.4"][..],
            "--grpc-server-tls-min-version",
        ),
        (&["store", "--min-time=yesterday"][..], "--min-time"),
    ] {
        let output = run(THANOS, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(flag),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = run(THANOS, &["receive", "--label=replica=0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--label"), "{}", stderr(&output));
}

#[test]
fn exclusive_config_pairs_are_enforced() {
    let output = run(
        THANOS,
        &[
            "store",
            "--objstore.config-file=/x",
            &format!("--objstore.config={FS_BUCKET}"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("--objstore.config-file") && err.contains("--objstore.config"),
        "{err}"
    );
}

#[test]
fn receive_requires_a_label() {
    let output = run(THANOS, &["receive"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no external labels configured"),
        "{}",
        stderr(&output)
    );
    // A hashring that cannot hold the replication factor is refused before anything is
    // started (Thanos would deadlock or fail every write).
    let output = run(
        THANOS,
        &[
            "receive",
            "--label=replica=\"r0\"",
            "--label=receive=\"true\"",
            "--receive.hashrings=[{\"endpoints\": [\"127.0.0.1:10901\"]}]",
            "--receive.replication-factor=2",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("invalid hashring configuration in --receive.hashrings")
            && stderr(&output)
                .contains("replication factor must not exceed the number of endpoints"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn store_requires_an_object_store() {
    let output = run(THANOS, &["store"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--objstore.config"),
        "{}",
        stderr(&output)
    );
}

/// A bound listener: passing its address as `--http-address` makes a component that got
/// past flag validation fail at startup, before serving anything.
fn busy_address() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

#[test]
fn thin_binaries_accept_both_argument_forms() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    let data_dir = format!("--data-dir={}", dir.path().join("data").display());
    let (_busy, busy) = busy_address();
    let http_address = format!("--http-address={busy}");
    let in_use = format!("start the HTTP server: listen on {busy}");
    let cases: [(&str, &str, Vec<&str>, &str); 3] = [
        (
            THANOS_STORE,
            "store",
            vec![
                bucket.as_str(),
                data_dir.as_str(),
                "--no-cache-index-header",
                http_address.as_str(),
            ],
            in_use.as_str(),
        ),
        (
            THANOS_RECEIVE,
            "receive",
            vec![
                "--label=replica=\"0\"",
                "--no-tsdb.wal-compression",
                http_address.as_str(),
            ],
            in_use.as_str(),
        ),
        (
            THANOS_QUERY,
            "query",
            vec![
                "--endpoint=127.0.0.1:10901",
                "--query.replica-label=replica,rule_replica",
                http_address.as_str(),
            ],
            in_use.as_str(),
        ),
    ];
    for (binary, component, args, message) in cases {
        let expected = format!("thanos {component}: {message}");
        let plain = run(binary, &args);
        let mut repeated_args = vec![component];
        repeated_args.extend(&args);
        let repeated = run(binary, &repeated_args);
        let mut full_args = vec![component];
        full_args.extend(&args);
        let full = run(THANOS, &full_args);
        for (form, output) in [
            ("plain", &plain),
            ("repeated", &repeated),
            ("thanos", &full),
        ] {
            assert_eq!(
                output.status.code(),
                Some(1),
                "{component} {form}: {}",
                stderr(output)
            );
            assert!(
                stderr(output).contains(&expected),
                "{component} {form}: {}",
                stderr(output)
            );
        }
        let unknown = run(binary, &["--bogus-flag"]);
        assert_eq!(unknown.status.code(), Some(2));
        assert!(stderr(&unknown).contains("--bogus-flag"));
    }
}

#[test]
fn unsupported_flags_fail_with_the_flag_named() {
    for (args, flag) in [
        (
            &[
                "query",
                "--endpoint.sd-config=endpoints: [{address: a:1, group: true}]",
            ][..],
            "--endpoint.sd-config: endpoint a:1: endpoint groups are not supported",
        ),
        (
            &[
                "store",
                "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: /tmp/thanos-cmd-unused\n",
                "--selector.relabel-config=- action: hashmod\n  source_labels: [a]\n  target_label: b",
            ][..],
            "--selector.relabel-config",
        ),
        (
            &[
                "store",
                "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: /tmp/thanos-cmd-unused\n",
                "--index-cache.config=type: MEMCACHED\nconfig:\n  addresses: [\"localhost:11211\"]",
            ][..],
            "MEMCACHED is not supported",
        ),
    ] {
        let output = run(THANOS, args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(flag),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn tls_files_are_loaded_at_startup() {
    let output = run(
        THANOS,
        &[
            "query",
            "--grpc-server-tls-cert=/nonexistent/tls.crt",
            "--grpc-server-tls-key=/nonexistent/tls.key",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("/nonexistent/tls.crt") && err.contains("--grpc-server-tls"),
        "{err}"
    );
    let output = run(
        THANOS,
        &["query", "--grpc-server-tls-cert=/nonexistent/tls.crt"],
    );
    assert_eq!(output.status.code(), Some(1));
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_fil: x\n").unwrap();
    let output = run(
        THANOS,
        &["query", &format!("--http.config={}", web.display())],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cert_fil"), "{}", stderr(&output));
}

#[test]
fn json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = format!("--data-dir={}", dir.path().join("data").display());
    let (_busy, busy) = busy_address();
    let http_address = format!("--http-address={busy}");
    let bucket = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.path().join("bucket").display()
    );
    let output = run(
        THANOS,
        &[
            "store",
            "--log.format=json",
            &bucket,
            &data_dir,
            &http_address,
        ],
    );
    let err = stderr(&output);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('{') && first.contains("\"level\":\"INFO\""),
        "{err}"
    );
    let output = run(THANOS, &["store", &bucket, &data_dir, &http_address]);
    let err = stderr(&output);
    assert!(
        err.lines().next().unwrap_or_default().starts_with("ts="),
        "{err}"
    );
    assert!(
        err.contains("level=info msg=\"starting store gateway\""),
        "{err}"
    );
}
