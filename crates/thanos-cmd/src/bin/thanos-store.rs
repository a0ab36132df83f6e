//! `thanos-store`: the same as `thanos store` (also accepts `thanos-store store [flags]`).
fn main() -> std::process::ExitCode {
    thanos_cmd::main(Some(thanos_cmd::Component::Store))
}
