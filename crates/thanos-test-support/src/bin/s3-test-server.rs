//! Standalone S3-compatible test server for black-box tests that start Thanos binaries as
//! separate processes. Prints its bound address (`127.0.0.1:PORT`) on the first stdout line and
//! then serves until killed.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use thanos_test_support::{
    DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, S3TestServer, S3TestServerOptions,
};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "s3-test-server",
    about = "In-process s3s-fs S3 server for tests"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Data directory (buckets are sub-directories); a temporary directory when not given.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Access key clients must sign with.
    #[arg(long, default_value = DEFAULT_ACCESS_KEY)]
    access_key: String,
    /// Secret key clients must sign with.
    #[arg(long, default_value = DEFAULT_SECRET_KEY)]
    secret_key: String,
    /// Bucket to create before serving (repeatable).
    #[arg(long)]
    bucket: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let opts = S3TestServerOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        access_key: args.access_key,
        secret_key: args.secret_key,
    };
    let server = match S3TestServer::start_with(opts).await {
        Ok(server) => server,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "s3-test-server: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for bucket in &args.bucket {
        server.create_bucket(bucket);
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", server.endpoint())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return std::process::ExitCode::FAILURE;
    }
    let _ = tokio::signal::ctrl_c().await;
    drop(server);
    std::process::ExitCode::SUCCESS
}
