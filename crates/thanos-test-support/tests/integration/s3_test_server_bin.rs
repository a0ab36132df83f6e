//! Black-box test of the `s3-test-server` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

#[test]
fn binary_prints_address_and_serves() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3-test-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--bucket",
            "blocks",
            "--bucket",
            "other",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_owned();
    let result = std::panic::catch_unwind(|| {
        assert!(addr.starts_with("127.0.0.1:"), "first line: {addr:?}");
        assert!(data.path().join("blocks").is_dir());
        assert!(data.path().join("other").is_dir());
        // Requests without a signature are refused: authentication is on.
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .write_all(b"GET /blocks/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 403"), "reply: {reply}");
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
