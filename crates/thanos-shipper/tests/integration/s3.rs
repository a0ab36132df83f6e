//! The shipper against the in-process S3 server of `thanos-test-support`, and against an S3
//! endpoint nobody listens on.

use crate::common;

use std::time::Duration;

use prometheus::Registry;
use thanos_objstore::{BucketConfig, Path as ObjectPath};
use thanos_shipper::{PROGRESS_FILENAME, ShipperError, ShipperOptions};
use thanos_test_support::S3TestServer;
use thanos_tsdb::meta::BlockMeta;

use common::*;

#[tokio::test]
async fn uploads_blocks_to_s3() {
    let server = S3TestServer::start().await;
    server.create_bucket("thanos");
    let reg = Registry::new();
    let bucket = BucketConfig::parse(&server.objstore_yaml("thanos"))
        .unwrap()
        .with_retry_policy(fast_retries(2))
        .build("receive", &reg)
        .unwrap();
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 3);
    let b = make_block(tsdb.path(), BLOCK_MS, 3);
    let s = shipper(tsdb.path(), bucket.clone(), ShipperOptions::default());

    let report = s.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![a.ulid, b.ulid]);
    assert_eq!(s.uploaded().unwrap(), vec![a.ulid, b.ulid]);

    for m in [&a, &b] {
        let local_dir = block_dir(tsdb.path(), m.ulid);
        let local = snapshot(&local_dir);
        let prefix = ObjectPath::from(m.ulid.to_string());
        let mut remote: Vec<String> = bucket
            .list(Some(&prefix))
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.location.to_string())
            .collect();
        remote.sort();
        let want: Vec<String> = local
            .keys()
            .filter(|k| *k != "tombstones")
            .map(|k| format!("{}/{k}", m.ulid))
            .collect();
        assert_eq!(remote, want);
        for (rel, data) in local.iter().filter(|(k, _)| *k != "tombstones") {
            let got = bucket
                .get(&ObjectPath::from(format!("{}/{rel}", m.ulid)))
                .await
                .unwrap();
            if rel == "meta.json" {
                let meta = BlockMeta::from_json(&got, "meta.json").unwrap();
                let t = meta.thanos.unwrap();
                assert_eq!(t.source, "receive");
                assert_eq!(t.labels["tenant_id"], "team-a");
                assert!(t.upload_time.is_some());
            } else {
                assert_eq!(&got[..], &data[..], "{rel}");
            }
        }
    }

    let report = s.sync().await.unwrap();
    assert!(report.uploaded.is_empty());
    assert_eq!(s.metrics().uploads(), 2);
}

#[tokio::test]
async fn unreachable_bucket_keeps_blocks_then_a_reachable_one_gets_them() {
    let tsdb = tempfile::tempdir().unwrap();
    let a = make_block(tsdb.path(), 0, 2);
    let b = make_block(tsdb.path(), BLOCK_MS, 2);
    let before = snapshot(tsdb.path());

    // A port that was just free: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml =
        thanos_test_support::objstore_yaml(&format!("127.0.0.1:{port}"), "thanos", "ak", "sk");
    let reg = Registry::new();
    let dead = BucketConfig::parse(&yaml)
        .unwrap()
        .with_retry_policy(fast_retries(1))
        .build("receive", &reg)
        .unwrap();
    let s = shipper(tsdb.path(), dead, ShipperOptions::default());
    let err = tokio::time::timeout(Duration::from_secs(60), s.sync())
        .await
        .expect("sync against a closed port must not hang")
        .unwrap_err();
    assert!(
        matches!(err, ShipperError::CheckExists { block, .. } if block == a.ulid),
        "{err}"
    );
    assert!(err.to_string().contains(&a.ulid.to_string()), "{err}");
    assert_eq!(s.metrics().dir_sync_failures(), 1);
    assert_eq!(s.metrics().uploads(), 0);
    assert!(s.uploaded().unwrap().is_empty());
    let mut after = snapshot(tsdb.path());
    after.remove(PROGRESS_FILENAME);
    assert_eq!(after, before, "local blocks must stay untouched");

    // Same directory, reachable bucket: everything goes up.
    let server = S3TestServer::start().await;
    server.create_bucket("thanos");
    let live = BucketConfig::parse(&server.objstore_yaml("thanos"))
        .unwrap()
        .build("receive", &Registry::new())
        .unwrap();
    let s = shipper(tsdb.path(), live.clone(), ShipperOptions::default());
    let report = s.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![a.ulid, b.ulid]);
    assert_eq!(s.uploaded().unwrap(), vec![a.ulid, b.ulid]);
    for m in [&a, &b] {
        assert!(
            live.exists(&ObjectPath::from(format!("{}/meta.json", m.ulid)))
                .await
                .unwrap()
        );
    }
}
