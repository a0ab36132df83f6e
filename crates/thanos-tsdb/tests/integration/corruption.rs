//! Corrupt or truncated block files give typed errors naming the block and the file; no
//! input makes the reader panic.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use thanos_tsdb::encoding::DecodeErrorKind;
use thanos_tsdb::{Block, Error};

/// A small promtool-written block in a fresh temp dir.
fn promtool_block() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let series = generate_series(7, 2, 3, 1);
    let input = tmp.path().join("in.om");
    write_openmetrics(&input, &series);
    let blocks = promtool_create_blocks(&input, &tmp.path().join("out"));
    let dir = blocks[0].clone();
    (tmp, dir)
}

/// Opens the block and reads every sample; returns the first error.
fn read_everything(dir: &Path) -> Result<u64, Error> {
    let block = Block::open(dir)?;
    let mut n = 0;
    for r in block
        .index()
        .all_postings()
        .map_err(|e| e.in_block(block.ulid()))?
    {
        n += block.series_samples(r)?.1.len() as u64;
    }
    for name in block.index().label_names() {
        for v in block
            .index()
            .label_values(name)
            .map_err(|e| e.in_block(block.ulid()))?
        {
            block
                .index()
                .postings(name, v)
                .map_err(|e| e.in_block(block.ulid()))?;
        }
    }
    Ok(n)
}

fn assert_names(err: &Error, ulid: &str, file: &str) {
    let text = err.to_string();
    assert!(text.contains(ulid), "error does not name the block: {text}");
    assert!(text.contains(file), "error does not name {file}: {text}");
}

#[test]
fn every_single_byte_flip_in_the_index_is_safe() {
    let (_tmp, dir) = promtool_block();
    let ulid = dir.file_name().unwrap().to_str().unwrap().to_string();
    let total = read_everything(&dir).unwrap();
    let path = dir.join("index");
    let orig = fs::read(&path).unwrap();
    let toc = *Block::open(&dir).unwrap().index().toc();
    // The legacy sections (label indices, label offset table) are never read, as in
    // Prometheus; flips there are harmless.
    let legacy = |i: u64| {
        (toc.label_indices..toc.postings).contains(&i)
            || (toc.label_offset_table..toc.postings_offset_table).contains(&i)
    };
    let mut errors = 0;
    for i in 0..orig.len() {
        let mut bad = orig.clone();
        bad[i] ^= 0x5a;
        fs::write(&path, &bad).unwrap();
        match read_everything(&dir) {
            Err(e) => {
                assert_names(&e, &ulid, "index");
                errors += 1;
            }
            // Only zero padding and the legacy sections are outside what is read.
            Ok(n) => {
                assert!(
                    orig[i] == 0 || legacy(i as u64),
                    "flip at {i} went unnoticed"
                );
                assert_eq!(n, total);
            }
        }
    }
    fs::write(&path, &orig).unwrap();
    assert!(errors > orig.len() * 3 / 4, "{errors} of {}", orig.len());
}

#[test]
fn truncated_index_and_chunks_are_errors() {
    let (_tmp, dir) = promtool_block();
    let ulid = dir.file_name().unwrap().to_str().unwrap().to_string();
    for file in ["index", "chunks/000001"] {
        let path = dir.join(file);
        let orig = fs::read(&path).unwrap();
        for len in (0..orig.len()).step_by(7).chain([orig.len() - 1]) {
            fs::write(&path, &orig[..len]).unwrap();
            let err = read_everything(&dir).unwrap_err();
            assert_names(&err, &ulid, file);
        }
        fs::write(&path, &orig).unwrap();
    }
    assert!(read_everything(&dir).is_ok());
}

#[test]
fn corrupt_chunk_crc_is_reported_with_offset() {
    let (_tmp, dir) = promtool_block();
    let ulid = dir.file_name().unwrap().to_str().unwrap().to_string();
    let path = dir.join("chunks/000001");
    let mut raw = fs::read(&path).unwrap();
    // Flip a byte of the first chunk's data (record starts at offset 8).
    raw[12] ^= 0xff;
    fs::write(&path, &raw).unwrap();
    let err = read_everything(&dir).unwrap_err();
    assert_names(&err, &ulid, "chunks/000001");
    match err.root() {
        Error::Corrupt { offset, kind, .. } => {
            assert!(matches!(kind, DecodeErrorKind::CrcMismatch { .. }));
            assert!(*offset >= 8 && *offset < 16, "offset {offset}");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn bad_meta_json_is_reported() {
    let (_tmp, dir) = promtool_block();
    let ulid = dir.file_name().unwrap().to_str().unwrap().to_string();
    let path = dir.join("meta.json");
    let orig = fs::read(&path).unwrap();
    fs::write(&path, &orig[..orig.len() / 2]).unwrap();
    let err = Block::open(&dir).unwrap_err();
    assert_names(&err, &ulid, "meta.json");
    assert!(matches!(err.root(), Error::Json { .. }));
    let v2 = String::from_utf8(orig.clone())
        .unwrap()
        .replace("\"version\": 1", "\"version\": 7");
    fs::write(&path, v2).unwrap();
    let err = Block::open(&dir).unwrap_err();
    assert_names(&err, &ulid, "meta.json");
    assert!(matches!(err.root(), Error::Invalid { .. }));
    fs::remove_file(&path).unwrap();
    let err = Block::open(&dir).unwrap_err();
    assert_names(&err, &ulid, "meta.json");
    assert!(matches!(err.root(), Error::Io { .. }));
}

#[test]
fn missing_files_are_reported() {
    let (_tmp, dir) = promtool_block();
    let ulid = dir.file_name().unwrap().to_str().unwrap().to_string();
    fs::remove_file(dir.join("chunks/000001")).unwrap();
    let err = read_everything(&dir).unwrap_err();
    assert_names(&err, &ulid, "chunks");
    fs::remove_file(dir.join("index")).unwrap();
    let err = Block::open(&dir).unwrap_err();
    assert_names(&err, &ulid, "index");
}
