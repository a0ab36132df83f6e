//! `thanos-query`: the same as `thanos query` (also accepts `thanos-query query [flags]`).
fn main() -> std::process::ExitCode {
    thanos_cmd::main(Some(thanos_cmd::Component::Query))
}
