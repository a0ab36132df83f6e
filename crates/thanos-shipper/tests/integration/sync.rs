//! Shipper behaviour against a FILESYSTEM bucket and against an in-memory store that records
//! (and can fail) writes.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use prometheus::Registry;
use sha2::{Digest, Sha256};
use thanos_model::Labels;
use thanos_objstore::Path as ObjectPath;
use thanos_shipper::{
    HashFunc, PROGRESS_FILENAME, Shipper, ShipperError, ShipperMetrics, ShipperOptions,
};
use thanos_tsdb::meta::{BlockMeta, BlockMetaCompaction};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use common::*;

/// Checks the uploaded meta.json of `local` against the local block.
fn check_uploaded_meta(uploaded: &[u8], local: &BlockMeta, local_dir: &std::path::Path) {
    let meta = BlockMeta::from_json(uploaded, "uploaded meta.json").unwrap();
    assert_eq!(meta.ulid, local.ulid);
    assert_eq!(meta.min_time, local.min_time);
    assert_eq!(meta.max_time, local.max_time);
    assert_eq!(meta.stats, local.stats);
    let t = meta.thanos.as_ref().expect("thanos section");
    let want_labels: BTreeMap<String, String> = [
        ("receive_replica".to_owned(), "0".to_owned()),
        ("tenant_id".to_owned(), "team-a".to_owned()),
    ]
    .into();
    assert_eq!(t.labels, want_labels);
    assert_eq!(t.source, "receive");
    assert_eq!(t.downsample.resolution, 0);
    let mut segments: Vec<String> = fs::read_dir(local_dir.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    segments.sort();
    assert!(segments.len() > 1, "test blocks have several segments");
    assert_eq!(t.segment_files, segments);
    // files: chunks/*, index, meta.json, sorted, sizes of the local files, meta.json sizeless.
    let mut want_files: Vec<(String, i64)> = segments
        .iter()
        .map(|s| {
            let rel = format!("chunks/{s}");
            let size = fs::metadata(local_dir.join(&rel)).unwrap().len() as i64;
            (rel, size)
        })
        .collect();
    want_files.push((
        "index".to_owned(),
        fs::metadata(local_dir.join("index")).unwrap().len() as i64,
    ));
    want_files.push(("meta.json".to_owned(), 0));
    let got: Vec<(String, i64)> = t
        .files
        .iter()
        .map(|f| (f.rel_path.clone(), f.size_bytes))
        .collect();
    assert_eq!(got, want_files);
    // upload_time: RFC 3339 in UTC, close to now.
    let ut = t.upload_time.as_deref().expect("upload_time");
    assert!(ut.ends_with('Z') && ut.len() >= 20, "{ut}");
    let year: i32 = ut[..4].parse().unwrap();
    assert!(year >= 2024, "{ut}");
    assert_eq!(&ut[10..11], "T", "{ut}");
    // Compaction untouched.
    assert_eq!(meta.compaction, local.compaction);
    // Tab-indented like Go's MarshalIndent.
    assert!(uploaded.starts_with(b"{\n\t\"ulid\""));
}

#[tokio::test]
async fn filesystem_bucket_sync_uploads_every_block_once() {
    let tsdb = tempfile::tempdir().unwrap();
    let bucket_dir = tempfile::tempdir().unwrap();
    // Created newest first, so that the oldest-first ordering is exercised.
    let c = make_block(tsdb.path(), 2 * BLOCK_MS, 4);
    let a = make_block(tsdb.path(), 0, 3);
    let b = make_block(tsdb.path(), BLOCK_MS, 5);
    // Things a receive tenant directory also holds, which the shipper must ignore.
    fs::create_dir_all(tsdb.path().join("wal")).unwrap();
    fs::create_dir_all(tsdb.path().join("chunks_head")).unwrap();
    fs::create_dir_all(
        tsdb.path()
            .join(format!("{}.tmp-for-creation", Ulid::generate())),
    )
    .unwrap();
    let before = snapshot(tsdb.path());

    let reg = Registry::new();
    let metrics = ShipperMetrics::new(&reg).unwrap();
    let bucket = fs_bucket(bucket_dir.path(), &reg);
    let shipper = Shipper::new(
        tsdb.path().to_path_buf(),
        bucket.clone(),
        ext_labels,
        ShipperOptions::default(),
        metrics.clone(),
    );
    assert!(shipper.uploaded().unwrap().is_empty());

    let report = shipper.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![a.ulid, b.ulid, c.ulid]);
    assert!(report.already_in_bucket.is_empty());
    assert!(report.is_complete());
    assert_eq!(shipper.uploaded().unwrap(), vec![a.ulid, b.ulid, c.ulid]);
    let progress = fs::read_to_string(tsdb.path().join(PROGRESS_FILENAME)).unwrap();
    assert!(
        progress.starts_with("{\n\t\"version\": 1,\n\t\"uploaded\": ["),
        "{progress}"
    );

    for m in [&a, &b, &c] {
        let local_dir = block_dir(tsdb.path(), m.ulid);
        let remote_dir = bucket_dir.path().join(m.ulid.to_string());
        let local = snapshot(&local_dir);
        let remote = snapshot(&remote_dir);
        // Same files, except tombstones (never uploaded); identical bytes except meta.json.
        let local_names: Vec<&String> = local.keys().filter(|k| *k != "tombstones").collect();
        let remote_names: Vec<&String> = remote.keys().collect();
        assert_eq!(local_names, remote_names);
        for (rel, data) in &remote {
            if rel != "meta.json" {
                assert_eq!(data, &local[rel], "{rel} of block {}", m.ulid);
            }
        }
        let uploaded_meta = bucket
            .get(&ObjectPath::from(format!("{}/meta.json", m.ulid)))
            .await
            .unwrap();
        check_uploaded_meta(&uploaded_meta, m, &local_dir);
    }
    // Local blocks untouched; the staging directory is cleaned up.
    let mut after = snapshot(tsdb.path());
    after.remove(PROGRESS_FILENAME);
    assert_eq!(after, before);
    assert!(
        !tsdb
            .path()
            .join("thanos/upload")
            .join(a.ulid.to_string())
            .exists()
    );

    // A second sync uploads nothing and needs no bucket check for recorded blocks.
    let report = shipper.sync().await.unwrap();
    assert!(report.uploaded.is_empty() && report.already_in_bucket.is_empty());
    assert_eq!(metrics.uploads(), 3);
    assert_eq!(metrics.dir_syncs(), 2);
    assert_eq!(metrics.dir_sync_failures(), 0);
    assert_eq!(metrics.upload_failures(), 0);
    let families = reg.gather();
    let uploads = families
        .iter()
        .find(|f| f.name() == "thanos_shipper_uploads_total")
        .unwrap();
    assert_eq!(uploads.get_metric()[0].get_counter().get_value(), 3.0);

    // A new block appears: only it is uploaded.
    let d = make_block(tsdb.path(), 3 * BLOCK_MS, 2);
    let report = shipper.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![d.ulid]);
    assert_eq!(
        shipper.uploaded().unwrap(),
        vec![a.ulid, b.ulid, c.ulid, d.ulid]
    );

    // A block deleted locally (retention) disappears from the progress file.
    fs::remove_dir_all(block_dir(tsdb.path(), a.ulid)).unwrap();
    let report = shipper.sync().await.unwrap();
    assert!(report.uploaded.is_empty());
    assert_eq!(shipper.uploaded().unwrap(), vec![b.ulid, c.ulid, d.ulid]);
}

#[tokio::test]
async fn meta_json_is_written_last_for_every_block() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 3);
    let b = make_block(tsdb.path(), BLOCK_MS, 3);
    let (bucket, store) = recording_bucket();
    let shipper = shipper(tsdb.path(), bucket, ShipperOptions::default());
    shipper.sync().await.unwrap();
    let puts = store.puts();
    for m in [&a, &b] {
        let prefix = format!("{}/", m.ulid);
        let mine: Vec<&String> = puts.iter().filter(|p| p.starts_with(&prefix)).collect();
        let n = mine.len();
        assert!(n >= 4, "{mine:?}");
        assert_eq!(mine[n - 1], &format!("{prefix}meta.json"));
        assert_eq!(mine[n - 2], &format!("{prefix}index"));
        assert!(
            mine[..n - 2].iter().all(|p| p.contains("/chunks/")),
            "{mine:?}"
        );
        assert!(!mine.iter().any(|p| p.ends_with("tombstones")));
    }
    // Block a (older) is completely uploaded before block b starts.
    let last_a = puts
        .iter()
        .position(|p| *p == format!("{}/meta.json", a.ulid))
        .unwrap();
    let first_b = puts
        .iter()
        .position(|p| p.starts_with(&b.ulid.to_string()))
        .unwrap();
    assert!(last_a < first_b, "{puts:?}");
}

#[tokio::test]
async fn sha256_hashes_are_recorded_when_requested() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 3);
    let (bucket, _store) = recording_bucket();
    let options = ShipperOptions {
        hash_func: HashFunc::Sha256,
        ..ShipperOptions::default()
    };
    let shipper = shipper(tsdb.path(), bucket.clone(), options);
    assert_eq!(shipper.sync().await.unwrap().uploaded, vec![a.ulid]);
    let data = bucket
        .get(&ObjectPath::from(format!("{}/meta.json", a.ulid)))
        .await
        .unwrap();
    let meta = BlockMeta::from_json(&data, "meta.json").unwrap();
    let files = &meta.thanos.unwrap().files;
    for f in files {
        if f.rel_path == "meta.json" {
            assert!(f.hash.is_none());
            continue;
        }
        let content = fs::read(block_dir(tsdb.path(), a.ulid).join(&f.rel_path)).unwrap();
        let want: String = Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let hash = f.hash.as_ref().expect("hash");
        assert_eq!(hash["hashFunc"], "SHA256");
        assert_eq!(hash["value"], want.as_str(), "{}", f.rel_path);
    }
}

#[tokio::test]
async fn failure_stops_the_sync_unless_out_of_order_is_allowed() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 2);
    let b = make_block(tsdb.path(), BLOCK_MS, 2);
    let c = make_block(tsdb.path(), 2 * BLOCK_MS, 2);
    let before = snapshot(tsdb.path());

    // In order: stops at b, c is not attempted, a is recorded.
    let (bucket, store) = recording_bucket();
    fail_block(&store, b.ulid);
    let metrics = ShipperMetrics::unregistered();
    let in_order = Shipper::new(
        tsdb.path().to_path_buf(),
        bucket.clone(),
        ext_labels,
        ShipperOptions::default(),
        metrics.clone(),
    );
    let err = in_order.sync().await.unwrap_err();
    assert!(
        matches!(err, ShipperError::Upload { block, .. } if block == b.ulid),
        "{err}"
    );
    assert!(err.to_string().contains(&b.ulid.to_string()), "{err}");
    assert_eq!(in_order.uploaded().unwrap(), vec![a.ulid]);
    assert!(
        !store
            .puts()
            .iter()
            .any(|p| p.starts_with(&c.ulid.to_string()))
    );
    assert_eq!(metrics.upload_failures(), 1);
    assert_eq!(metrics.dir_sync_failures(), 1);
    assert_eq!(metrics.uploads(), 1);
    assert!(
        !tsdb
            .path()
            .join("thanos/upload")
            .join(b.ulid.to_string())
            .exists()
    );

    // Out of order allowed: c goes up, b is reported.
    let ooo = shipper(
        tsdb.path(),
        bucket.clone(),
        ShipperOptions {
            allow_out_of_order: true,
            ..ShipperOptions::default()
        },
    );
    let report = ooo.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![c.ulid]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, b.ulid);
    assert!(!report.is_complete());
    assert_eq!(ooo.uploaded().unwrap(), vec![a.ulid, c.ulid]);
    assert_eq!(ooo.metrics().dir_sync_failures(), 1);

    // The bucket recovers: b is retried and uploaded.
    store.heal();
    let report = in_order.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![b.ulid]);
    assert_eq!(in_order.uploaded().unwrap(), vec![a.ulid, c.ulid, b.ulid]);
    assert!(
        bucket
            .exists(&ObjectPath::from(format!("{}/meta.json", b.ulid)))
            .await
            .unwrap()
    );

    let mut after = snapshot(tsdb.path());
    after.remove(PROGRESS_FILENAME);
    assert_eq!(after, before, "local blocks must stay untouched");
}

#[tokio::test]
async fn block_already_in_bucket_is_recorded_not_reuploaded() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 2);
    let b = make_block(tsdb.path(), BLOCK_MS, 2);
    let (bucket, store) = recording_bucket();
    // Someone (an earlier run whose progress file was lost) uploaded a already.
    bucket
        .upload(
            &ObjectPath::from(format!("{}/meta.json", a.ulid)),
            a.to_json().into(),
        )
        .await
        .unwrap();
    let shipper = shipper(tsdb.path(), bucket, ShipperOptions::default());
    let report = shipper.sync().await.unwrap();
    assert_eq!(report.already_in_bucket, vec![a.ulid]);
    assert_eq!(report.uploaded, vec![b.ulid]);
    let a_puts = store
        .puts()
        .iter()
        .filter(|p| p.starts_with(&a.ulid.to_string()))
        .count();
    assert_eq!(a_puts, 1, "only the meta.json written by the test");
    assert_eq!(shipper.uploaded().unwrap(), vec![a.ulid, b.ulid]);
    assert_eq!(shipper.metrics().uploads(), 1);
}

#[tokio::test]
async fn corrupted_block_dirs_are_skipped_or_fail_the_sync() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 2);
    let no_meta = Ulid::generate();
    fs::create_dir_all(block_dir(tsdb.path(), no_meta).join("chunks")).unwrap();
    let bad_meta = Ulid::generate();
    fs::create_dir_all(block_dir(tsdb.path(), bad_meta)).unwrap();
    fs::write(
        block_dir(tsdb.path(), bad_meta).join("meta.json"),
        b"{not json",
    )
    .unwrap();

    // Without skipping, the sync fails before uploading anything.
    let (bucket, store) = recording_bucket();
    let strict = shipper(tsdb.path(), bucket.clone(), ShipperOptions::default());
    let err = strict.sync().await.unwrap_err();
    assert!(matches!(err, ShipperError::CorruptBlock { .. }), "{err}");
    assert!(err.to_string().contains("meta.json"), "{err}");
    assert!(store.puts().is_empty());
    assert!(strict.metrics().corrupted_blocks() >= 1);

    // With skipping, both are counted and the good block goes up.
    let lenient = shipper(
        tsdb.path(),
        bucket,
        ShipperOptions {
            skip_corrupted: true,
            ..ShipperOptions::default()
        },
    );
    let report = lenient.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![a.ulid]);
    let mut corrupted = report.corrupted.clone();
    corrupted.sort();
    let mut want = vec![
        block_dir(tsdb.path(), no_meta),
        block_dir(tsdb.path(), bad_meta),
    ];
    want.sort();
    assert_eq!(corrupted, want);
    assert!(!report.is_complete());
    assert_eq!(lenient.metrics().corrupted_blocks(), 2);
    assert_eq!(lenient.metrics().dir_sync_failures(), 1);
    assert_eq!(lenient.uploaded().unwrap(), vec![a.ulid]);
}

#[tokio::test]
async fn compacted_blocks_and_empty_labels_are_not_uploaded() {
    let tsdb = tempfile::tempdir().unwrap();
    let compacted = make_block_with(
        tsdb.path(),
        0,
        2,
        Some(BlockMetaCompaction {
            level: 2,
            sources: vec![Ulid::generate(), Ulid::generate()],
            ..BlockMetaCompaction::default()
        }),
    );
    let (bucket, store) = recording_bucket();
    let s = shipper(tsdb.path(), bucket.clone(), ShipperOptions::default());
    let report = s.sync().await.unwrap();
    assert!(report.uploaded.is_empty());
    assert!(store.puts().is_empty());
    assert!(s.uploaded().unwrap().is_empty());
    assert!(!s.uploaded().unwrap().contains(&compacted.ulid));

    // Level-1 block, but the producer has no external labels: refused like Thanos does.
    let a = make_block(tsdb.path(), BLOCK_MS, 2);
    let no_labels = Shipper::new(
        tsdb.path().to_path_buf(),
        bucket,
        Labels::empty,
        ShipperOptions::default(),
        ShipperMetrics::unregistered(),
    );
    let err = no_labels.sync().await.unwrap_err();
    assert!(
        matches!(err, ShipperError::EmptyLabels { block } if block == a.ulid),
        "{err}"
    );
    assert!(store.puts().is_empty());
}

#[tokio::test]
async fn corrupt_progress_file_is_rewritten() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 2);
    let (bucket, store) = recording_bucket();
    let s = shipper(tsdb.path(), bucket, ShipperOptions::default());
    s.sync().await.unwrap();
    fs::write(tsdb.path().join(PROGRESS_FILENAME), b"garbage").unwrap();
    assert!(s.uploaded().is_err());
    let puts_before = store.puts().len();
    let report = s.sync().await.unwrap();
    // Found again through the bucket, not uploaded twice.
    assert_eq!(report.already_in_bucket, vec![a.ulid]);
    assert_eq!(store.puts().len(), puts_before);
    assert_eq!(s.uploaded().unwrap(), vec![a.ulid]);
}

#[tokio::test]
async fn run_loop_uploads_new_blocks_until_cancelled() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 2);
    let (bucket, _store) = recording_bucket();
    let s = shipper(tsdb.path(), bucket, ShipperOptions::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let s = s.clone();
        let cancel = cancel.clone();
        async move { s.run(Duration::from_millis(20), cancel).await }
    });
    let wait_for = |want: Vec<Ulid>| {
        let s = s.clone();
        async move {
            for _ in 0..500 {
                if s.uploaded().unwrap() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("shipper did not upload {want:?}");
        }
    };
    wait_for(vec![a.ulid]).await;
    let b = make_block(tsdb.path(), BLOCK_MS, 2);
    wait_for(vec![a.ulid, b.ulid]).await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run stops when cancelled")
        .unwrap();
    assert!(s.metrics().dir_syncs() >= 2);
}

#[tokio::test]
async fn promtool_reads_the_uploaded_blocks() {
    let tsdb = tempfile::tempdir().unwrap();
    let bucket_dir = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 3);
    let b = make_block(tsdb.path(), BLOCK_MS, 2);
    let bucket = fs_bucket(bucket_dir.path(), &Registry::new());
    let s = shipper(tsdb.path(), bucket, ShipperOptions::default());
    assert_eq!(s.sync().await.unwrap().uploaded, vec![a.ulid, b.ulid]);

    // Prometheus opens the bucket directory as a TSDB: our meta.json (with the thanos
    // section), index and chunks are readable by the real thing.
    let out = std::process::Command::new("/usr/bin/promtool")
        .args(["tsdb", "list"])
        .arg(bucket_dir.path())
        .output()
        .expect("run promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for m in [&a, &b] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&m.ulid.to_string()))
            .unwrap_or_else(|| panic!("block {} not listed: {stdout}", m.ulid));
        assert!(
            line.contains(&m.stats.num_samples.to_string()),
            "{line} lacks {}",
            m.stats.num_samples
        );
    }
    // `tsdb dump` opens the directory as a whole database, which needs a (here empty) WAL.
    fs::create_dir_all(bucket_dir.path().join("wal")).unwrap();
    let dump = std::process::Command::new("/usr/bin/promtool")
        .args(["tsdb", "dump"])
        .arg(bucket_dir.path())
        .output()
        .expect("run promtool");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let samples = String::from_utf8_lossy(&dump.stdout)
        .lines()
        .filter(|l| l.starts_with("{__name__=\"up\""))
        .count() as u64;
    assert_eq!(samples, a.stats.num_samples + b.stats.num_samples);
}
