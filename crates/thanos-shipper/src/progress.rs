//! The progress file `thanos.shipper.json`: `{"version": 1, "uploaded": [ULID, ...]}`.
//!
//! Mirrors Thanos `shipper.Meta` / `ReadMetaFile` / `WriteMetaFile`. Written atomically
//! (temporary file, fsync, rename, fsync of the directory) with tab indentation and a trailing
//! newline, as Go's `json.Encoder` with `SetIndent("", "\t")` does.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use ulid::Ulid;

use crate::error::ShipperError;

/// File name of the progress file inside the shipper's directory.
pub const PROGRESS_FILENAME: &str = "thanos.shipper.json";

/// The only progress file version.
const PROGRESS_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct ProgressFile {
    version: u32,
    #[serde(default, deserialize_with = "null_as_empty")]
    uploaded: Vec<String>,
}

/// Go writes a nil slice as `null`.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Path of the progress file for a shipper directory.
pub fn progress_path(dir: &Path) -> PathBuf {
    dir.join(PROGRESS_FILENAME)
}

/// Reads the ULIDs recorded as uploaded in `<dir>/thanos.shipper.json`; `Ok(None)` when the
/// file does not exist.
pub fn read_progress(dir: &Path) -> Result<Option<Vec<Ulid>>, ShipperError> {
    let path = progress_path(dir);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ShipperError::ReadProgress {
                path,
                reason: e.to_string(),
            });
        }
    };
    let file: ProgressFile =
        serde_json::from_slice(&data).map_err(|e| ShipperError::ReadProgress {
            path: path.clone(),
            reason: format!("invalid json: {e}"),
        })?;
    if file.version != PROGRESS_VERSION {
        return Err(ShipperError::ReadProgress {
            path,
            reason: format!("unexpected version {}", file.version),
        });
    }
    let ids = file
        .uploaded
        .iter()
        .map(|s| {
            Ulid::from_string(s).map_err(|e| ShipperError::ReadProgress {
                path: path.clone(),
                reason: format!("invalid ulid {s:?}: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(ids))
}

/// Writes `<dir>/thanos.shipper.json` atomically: temporary file, fsync, rename, fsync of
/// `dir`.
pub fn write_progress(dir: &Path, uploaded: &[Ulid]) -> Result<(), ShipperError> {
    let file = ProgressFile {
        version: PROGRESS_VERSION,
        uploaded: uploaded.iter().map(Ulid::to_string).collect(),
    };
    let mut body = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut body, fmt);
    file.serialize(&mut ser)
        .map_err(|e| ShipperError::WriteProgress {
            path: progress_path(dir),
            source: io::Error::other(e),
        })?;
    body.push(b'\n');

    let path = progress_path(dir);
    let tmp = dir.join(format!("{PROGRESS_FILENAME}.tmp"));
    let write_tmp = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()
    };
    write_tmp().map_err(|source| ShipperError::WriteProgress {
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, &path).map_err(|source| ShipperError::WriteProgress {
        path: path.clone(),
        source,
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ShipperError::WriteProgress {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_go_format() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_progress(tmp.path()).unwrap(), None);
        let a = Ulid::from_string("01HQ3Y3P7V1T8YQ2S5J5C3M4Z0").unwrap();
        let b = Ulid::from_string("01HQ3Y3P7V1T8YQ2S5J5C3M4Z1").unwrap();
        write_progress(tmp.path(), &[a, b]).unwrap();
        let text = fs::read_to_string(progress_path(tmp.path())).unwrap();
        assert_eq!(
            text,
            "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"01HQ3Y3P7V1T8YQ2S5J5C3M4Z0\",\n\t\t\"01HQ3Y3P7V1T8YQ2S5J5C3M4Z1\"\n\t]\n}\n"
        );
        assert_eq!(read_progress(tmp.path()).unwrap(), Some(vec![a, b]));
        assert!(!tmp.path().join("thanos.shipper.json.tmp").exists());
    }

    #[test]
    fn accepts_go_null_and_rejects_bad_content() {
        let tmp = tempfile::tempdir().unwrap();
        let path = progress_path(tmp.path());
        fs::write(&path, "{\"version\":1,\"uploaded\":null}").unwrap();
        assert_eq!(read_progress(tmp.path()).unwrap(), Some(vec![]));
        fs::write(&path, "{\"version\":2,\"uploaded\":[]}").unwrap();
        let err = read_progress(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("unexpected version 2"), "{err}");
        fs::write(&path, "{\"version\":1,\"uploaded\":[\"nope\"]}").unwrap();
        let err = read_progress(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("invalid ulid"), "{err}");
        fs::write(&path, "{").unwrap();
        let err = read_progress(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("thanos.shipper.json"), "{err}");
    }
}
