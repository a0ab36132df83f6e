//! The `thanos` binary: `thanos receive|store|query [flags]`.
fn main() -> std::process::ExitCode {
    thanos_cmd::main(None)
}
