//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use thanos_wal::record::{self, Record};
use thanos_wal::wlog::{Position, WalReader};

/// The project's independent Python WAL reader (`../shared/tools` beside the repository).
pub fn wal_inspect_script() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/wal_inspect.py");
    assert!(p.exists(), "missing {}", p.display());
    p
}

/// Runs `wal_inspect.py` on a directory of segments and returns its `decoded:` counters.
pub fn wal_inspect(dir: &Path) -> HashMap<String, u64> {
    let out = Command::new("python3")
        .arg(wal_inspect_script())
        .arg(dir)
        .output()
        .expect("run python3 wal_inspect.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wal_inspect.py failed on {}: {}\n{stdout}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("decoded: "))
        .unwrap_or_else(|| panic!("no decoded line in {stdout}"));
    parse_py_dict(line)
}

/// Parses a Python dict of string keys and integer values, e.g. `{'series': 3}`.
fn parse_py_dict(s: &str) -> HashMap<String, u64> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(", ")
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once(": ").expect("key: value");
            (
                k.trim_matches('\'').to_string(),
                v.parse().expect("integer"),
            )
        })
        .collect()
}

/// Everything a replay of `dir` produced.
#[derive(Debug, Default)]
pub struct Replay {
    /// Decoded records in order.
    pub records: Vec<Record>,
    /// Raw (decompressed) records in order.
    pub raw: Vec<Vec<u8>>,
    /// Torn tail reported by the reader.
    pub torn: Option<Position>,
}

impl Replay {
    /// Count of entries per kind, with the same keys `wal_inspect.py` prints.
    pub fn counts(&self) -> HashMap<String, u64> {
        let mut c: HashMap<String, u64> = HashMap::new();
        for r in &self.records {
            let (key, typ, n) = match r {
                Record::Series(v) => ("series", 1, v.len()),
                Record::Samples(v) => ("samples", 2, v.len()),
                Record::Tombstones(v) => ("tombstones", 3, v.len()),
                Record::Exemplars(v) => ("exemplars", 4, v.len()),
                Record::Metadata(v) => ("metadata", 6, v.len()),
                other => panic!("unexpected record {other:?}"),
            };
            if n > 0 {
                *c.entry(key.to_string()).or_default() += n as u64;
            }
            *c.entry(format!("records_type_{typ}")).or_default() += 1;
        }
        c
    }
}

/// Replays a WAL directory (checkpoint, then segments), decoding every record.
pub fn replay(dir: &Path) -> Replay {
    let mut reader = WalReader::open(dir).expect("open reader");
    let mut out = Replay::default();
    while let Some(rec) = reader.next_record().expect("read record") {
        out.records
            .push(record::decode(rec).expect("decode record"));
        out.raw.push(rec.to_vec());
    }
    out.torn = reader.torn_tail();
    out
}
