//! `thanos-receive`: the same as `thanos receive` (also accepts `thanos-receive receive [flags]`).
fn main() -> std::process::ExitCode {
    thanos_cmd::main(Some(thanos_cmd::Component::Receive))
}
