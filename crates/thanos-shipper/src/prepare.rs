//! Blocking filesystem work of one upload: hard-linking a block into the upload directory,
//! rewriting its `meta.json` with the Thanos section, listing (and optionally hashing) its
//! files. Mirrors Thanos `shipper.hardlinkBlock`, `block.GetSegmentFiles` and
//! `block.GatherFileStats`.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use thanos_tsdb::meta::{BlockMeta, META_FILENAME, ThanosFile, ThanosMeta};
use ulid::Ulid;

use crate::error::ShipperError;

/// Chunk segment directory of a block.
pub(crate) const CHUNKS_DIR: &str = "chunks";
/// Index file of a block.
pub(crate) const INDEX_FILENAME: &str = "index";
/// Tombstones file of a block; never uploaded.
const TOMBSTONES_FILENAME: &str = "tombstones";

/// Hash recorded per file in `thanos.files` (`--hash-func`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HashFunc {
    /// No hashes (flag value `""`, the default).
    #[default]
    None,
    /// SHA-256 of every file except `meta.json` (flag value `SHA256`).
    Sha256,
}

impl HashFunc {
    /// The flag / meta.json spelling: `""` or `"SHA256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashFunc::None => "",
            HashFunc::Sha256 => "SHA256",
        }
    }
}

impl std::str::FromStr for HashFunc {
    type Err = String;

    /// Parses the `--hash-func` flag value (`""` or `"SHA256"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" => Ok(HashFunc::None),
            "SHA256" => Ok(HashFunc::Sha256),
            other => Err(format!(
                "unknown hash function {other:?} (expected \"\" or \"SHA256\")"
            )),
        }
    }
}

/// What a prepared upload directory holds.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The rewritten meta (written into the upload directory without `upload_time`).
    pub meta: BlockMeta,
    /// Files to upload before `meta.json`, relative to the block directory, in upload order:
    /// `chunks/*`, `index`, then any other file.
    pub files: Vec<String>,
}

/// Everything needed to rewrite the Thanos section of a block's meta.
#[derive(Debug)]
pub(crate) struct ThanosFields<'a> {
    pub labels: BTreeMap<String, String>,
    pub source: &'a str,
    pub hash: HashFunc,
}

fn prep_err(block: Ulid, path: &Path) -> impl FnOnce(io::Error) -> ShipperError + '_ {
    move |source| ShipperError::Prepare {
        block,
        path: path.to_path_buf(),
        source,
    }
}

/// Removes `dir` if it exists.
pub(crate) fn remove_dir_if_exists(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Hard-links the block at `src` into `updir` (replacing leftovers), writes the rewritten
/// meta.json there and lists the files to upload. The block at `src` is never modified.
pub(crate) fn prepare_upload(
    src: &Path,
    updir: &Path,
    meta: &BlockMeta,
    fields: &ThanosFields<'_>,
) -> Result<Prepared, ShipperError> {
    let id = meta.ulid;
    remove_dir_if_exists(updir).map_err(prep_err(id, updir))?;
    let up_chunks = updir.join(CHUNKS_DIR);
    fs::create_dir_all(&up_chunks).map_err(prep_err(id, &up_chunks))?;

    // chunks/*
    let src_chunks = src.join(CHUNKS_DIR);
    let mut segments = Vec::new();
    for entry in fs::read_dir(&src_chunks).map_err(prep_err(id, &src_chunks))? {
        let entry = entry.map_err(prep_err(id, &src_chunks))?;
        let ft = entry.file_type().map_err(prep_err(id, &entry.path()))?;
        if !ft.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let to = up_chunks.join(&name);
        fs::hard_link(entry.path(), &to).map_err(prep_err(id, &to))?;
        segments.push(name);
    }
    segments.sort();

    // index (required) and any other top-level file except meta.json and tombstones.
    let index = src.join(INDEX_FILENAME);
    fs::hard_link(&index, updir.join(INDEX_FILENAME)).map_err(prep_err(id, &index))?;
    let mut others = Vec::new();
    for entry in fs::read_dir(src).map_err(prep_err(id, src))? {
        let entry = entry.map_err(prep_err(id, src))?;
        let ft = entry.file_type().map_err(prep_err(id, &entry.path()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !ft.is_file() || [INDEX_FILENAME, META_FILENAME, TOMBSTONES_FILENAME].contains(&&*name) {
            continue;
        }
        let to = updir.join(&name);
        fs::hard_link(entry.path(), &to).map_err(prep_err(id, &to))?;
        others.push(name);
    }
    others.sort();

    let mut upload_order: Vec<String> = segments
        .iter()
        .map(|s| format!("{CHUNKS_DIR}/{s}"))
        .collect();
    upload_order.push(INDEX_FILENAME.to_owned());
    upload_order.extend(others);

    let mut new_meta = meta.clone();
    let thanos = new_meta.thanos.get_or_insert_with(ThanosMeta::default);
    thanos.labels = fields.labels.clone();
    thanos.source = fields.source.to_owned();
    thanos.segment_files = segments;
    thanos.downsample.resolution = 0;
    thanos.upload_time = None;
    thanos.files = gather_files(id, updir, &upload_order, fields.hash)?;
    // Replaces the hard link with a new file: the original block's meta.json is untouched.
    new_meta
        .write_to_dir(updir)
        .map_err(|source| ShipperError::WriteMeta { block: id, source })?;
    Ok(Prepared {
        meta: new_meta,
        files: upload_order,
    })
}

/// `thanos.files`: every file sorted by relative path, `meta.json` included without size or
/// hash.
fn gather_files(
    id: Ulid,
    dir: &Path,
    rel_paths: &[String],
    hash: HashFunc,
) -> Result<Vec<ThanosFile>, ShipperError> {
    let mut files = Vec::with_capacity(rel_paths.len() + 1);
    for rel in rel_paths {
        let path = dir.join(rel);
        let size = fs::metadata(&path).map_err(prep_err(id, &path))?.len();
        let hash = match hash {
            HashFunc::None => None,
            HashFunc::Sha256 => Some(serde_json::json!({
                "hashFunc": HashFunc::Sha256.as_str(),
                "value": sha256_hex(&path).map_err(prep_err(id, &path))?,
            })),
        };
        files.push(ThanosFile {
            rel_path: rel.clone(),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            hash,
        });
    }
    files.push(ThanosFile {
        rel_path: META_FILENAME.to_owned(),
        size_bytes: 0,
        hash: None,
    });
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(files)
}

/// Lower-case hex SHA-256 of a file, read in 64 KiB pieces.
fn sha256_hex(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    Ok(out)
}

/// Formats a time as Go's `time.Time` JSON encoding does in UTC (RFC 3339 with nanoseconds,
/// trailing zeros of the fraction removed): `2024-01-02T03:04:05.123Z`.
pub(crate) fn rfc3339_nano_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, March-based
    let mp = (5 * doy + 2) / 153; // month, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let at = |s: u64, n: u32| rfc3339_nano_utc(UNIX_EPOCH + Duration::new(s, n));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000, 120_000_000), "2023-11-14T22:13:20.12Z");
        assert_eq!(at(4_107_542_399, 1), "2100-02-28T23:59:59.000000001Z");
        assert_eq!(
            at(1_709_251_199, 999_999_999),
            "2024-02-29T23:59:59.999999999Z"
        );
    }

    #[test]
    fn hash_func_flag_values() {
        assert_eq!("".parse::<HashFunc>().unwrap(), HashFunc::None);
        assert_eq!("SHA256".parse::<HashFunc>().unwrap(), HashFunc::Sha256);
        assert!("sha1".parse::<HashFunc>().is_err());
        assert_eq!(HashFunc::Sha256.as_str(), "SHA256");
    }

    #[test]
    fn sha256_of_known_content() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_hex(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn prepare_links_and_rewrites_without_touching_source() {
        let tmp = tempfile::tempdir().unwrap();
        let id = Ulid::from_string("01HQ3Y3P7V1T8YQ2S5J5C3M4Z0").unwrap();
        let src = tmp.path().join(id.to_string());
        fs::create_dir_all(src.join("chunks")).unwrap();
        fs::write(src.join("chunks/000002"), b"bb").unwrap();
        fs::write(src.join("chunks/000001"), b"a").unwrap();
        fs::write(src.join("index"), b"index!").unwrap();
        fs::write(src.join("tombstones"), b"tomb").unwrap();
        fs::write(src.join("extra"), b"x").unwrap();
        let meta = BlockMeta::new_level1(id, 0, 10, Default::default());
        meta.write_to_dir(&src).unwrap();
        let original_meta = fs::read(src.join("meta.json")).unwrap();

        let updir = tmp.path().join("thanos/upload").join(id.to_string());
        fs::create_dir_all(updir.join("leftover")).unwrap();
        let fields = ThanosFields {
            labels: BTreeMap::from([("tenant_id".to_owned(), "t".to_owned())]),
            source: "receive",
            hash: HashFunc::Sha256,
        };
        let p = prepare_upload(&src, &updir, &meta, &fields).unwrap();
        assert_eq!(
            p.files,
            ["chunks/000001", "chunks/000002", "index", "extra"]
        );
        assert!(!updir.join("leftover").exists());
        assert!(!updir.join("tombstones").exists());
        assert_eq!(fs::read(src.join("meta.json")).unwrap(), original_meta);
        let t = p.meta.thanos.as_ref().unwrap();
        assert_eq!(t.source, "receive");
        assert_eq!(t.segment_files, ["000001", "000002"]);
        let rels: Vec<&str> = t.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(
            rels,
            [
                "chunks/000001",
                "chunks/000002",
                "extra",
                "index",
                "meta.json"
            ]
        );
        assert_eq!(t.files[3].size_bytes, 6);
        assert_eq!(t.files[4].size_bytes, 0);
        assert!(t.files[4].hash.is_none());
        assert_eq!(t.files[0].hash.as_ref().unwrap()["hashFunc"], "SHA256");
        let written = BlockMeta::read_from_dir(&updir).unwrap();
        assert_eq!(&written, &p.meta);
    }
}
