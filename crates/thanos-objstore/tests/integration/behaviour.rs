//! One behaviour suite run against FILESYSTEM (a tempdir) and against the in-process S3 server
//! of `thanos-test-support`, both built from objstore YAML through `BucketConfig::parse`.

use crate::common;

use bytes::Bytes;
use prometheus::Registry;
use thanos_objstore::{Bucket, BucketConfig, Path, ProviderKind};
use thanos_test_support::S3TestServer;

use common::{failures, metric, ops};

/// Deterministic, non-repeating-ish content of `len` bytes.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

async fn behaviour_suite(bucket: &Bucket, reg: &Registry) {
    let name = bucket.name().to_owned();
    let obj = Path::from("a/b/obj1");

    // put / get / exists / attributes
    bucket
        .upload(&obj, Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    assert_eq!(
        bucket.get(&obj).await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert!(bucket.exists(&obj).await.unwrap());
    assert_eq!(bucket.attributes(&obj).await.unwrap().size, 11);

    // get_range / get_ranges
    assert_eq!(
        bucket.get_range(&obj, 1..4).await.unwrap(),
        Bytes::from_static(b"ell")
    );
    let parts = bucket.get_ranges(&obj, &[0..2, 6..11, 4..7]).await.unwrap();
    assert_eq!(
        parts,
        vec![
            Bytes::from_static(b"he"),
            Bytes::from_static(b"world"),
            Bytes::from_static(b"o w")
        ]
    );

    // listing, recursive and with a delimiter
    for p in [
        "blocks/01A/meta.json",
        "blocks/01A/chunks/000001",
        "blocks/01B/meta.json",
        "top.txt",
    ] {
        bucket
            .upload(&Path::from(p), Bytes::from(p.to_owned()))
            .await
            .unwrap();
    }
    let dirs = bucket
        .list_with_delimiter(Some(&Path::from("blocks")))
        .await
        .unwrap();
    let mut prefixes: Vec<String> = dirs.common_prefixes.iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, vec!["blocks/01A", "blocks/01B"]);
    assert!(dirs.objects.is_empty());
    let root = bucket.list_with_delimiter(None).await.unwrap();
    let root_objects: Vec<String> = root
        .objects
        .iter()
        .map(|o| o.location.to_string())
        .collect();
    assert_eq!(root_objects, vec!["top.txt"]);
    let mut root_prefixes: Vec<String> =
        root.common_prefixes.iter().map(|p| p.to_string()).collect();
    root_prefixes.sort();
    assert_eq!(root_prefixes, vec!["a", "blocks"]);
    let mut all: Vec<String> = bucket
        .list(Some(&Path::from("blocks")))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            "blocks/01A/chunks/000001",
            "blocks/01A/meta.json",
            "blocks/01B/meta.json"
        ]
    );

    // delete, then NotFound (not a failure for get/exists/attributes, like Thanos)
    let get_ops_before = ops(reg, &name, "get");
    bucket.delete(&obj).await.unwrap();
    assert!(!bucket.exists(&obj).await.unwrap());
    let err = bucket.get(&obj).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("a/b/obj1"), "{err}");
    assert!(
        bucket
            .get_range(&obj, 0..1)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(bucket.attributes(&obj).await.unwrap_err().is_not_found());
    assert_eq!(ops(reg, &name, "get"), get_ops_before + 1.0);
    for op in ["get", "get_range", "exists", "attributes"] {
        assert_eq!(failures(reg, &name, op), 0.0, "{op}");
    }

    // large object (> 5 MiB; multipart when the part size allows it)
    let big = pattern(11 * 1024 * 1024 + 17, 7);
    let big_path = Path::from("blocks/01A/chunks/000002");
    bucket.upload(&big_path, big.clone()).await.unwrap();
    assert_eq!(
        bucket.attributes(&big_path).await.unwrap().size,
        big.len() as u64
    );
    let got = bucket.get(&big_path).await.unwrap();
    assert!(got == big, "large object round trip differs");
    let boundary = 5 * 1024 * 1024;
    let across = bucket
        .get_range(&big_path, (boundary - 100)..(boundary + 100))
        .await
        .unwrap();
    assert_eq!(
        across,
        big.slice((boundary - 100) as usize..(boundary + 100) as usize)
    );

    // upload of a local file, streamed in parts
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("chunk");
    let file_data = pattern(6 * 1024 * 1024 + 3, 42);
    std::fs::write(&local, &file_data).unwrap();
    let file_path = Path::from("blocks/01B/chunks/000001");
    bucket.upload_file(&file_path, &local).await.unwrap();
    assert!(
        bucket.get(&file_path).await.unwrap() == file_data,
        "uploaded file differs"
    );
    let missing_local = bucket
        .upload_file(&file_path, &dir.path().join("nope"))
        .await
        .unwrap_err();
    assert!(
        missing_local.to_string().contains("nope"),
        "{missing_local}"
    );

    // metrics moved
    assert!(ops(reg, &name, "upload") >= 7.0);
    assert_eq!(ops(reg, &name, "iter"), 3.0);
    assert_eq!(ops(reg, &name, "delete"), 1.0);
    assert_eq!(failures(reg, &name, "upload"), 0.0);
    let fetched = metric(
        reg,
        "thanos_objstore_bucket_operation_fetched_bytes_total",
        &[("bucket", &name), ("operation", "get")],
    )
    .unwrap();
    assert!(
        fetched >= (big.len() + file_data.len()) as f64,
        "fetched {fetched}"
    );
    let last_upload = metric(
        reg,
        "thanos_objstore_bucket_last_successful_upload_time",
        &[("bucket", &name)],
    )
    .unwrap();
    assert!(last_upload > 1.6e9, "last upload {last_upload}");
    let durations = metric(
        reg,
        "thanos_objstore_bucket_operation_duration_seconds",
        &[("bucket", &name), ("operation", "upload")],
    )
    .unwrap();
    assert!(durations >= 7.0, "upload duration samples {durations}");
}

#[tokio::test]
async fn filesystem_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "type: filesystem\nconfig:\n  directory: {:?}\n",
        dir.path().join("bkt").display().to_string()
    );
    let cfg = BucketConfig::parse(&yaml).unwrap();
    assert_eq!(cfg.provider(), ProviderKind::Filesystem);
    let reg = Registry::new();
    let bucket = cfg.build("test", &reg).unwrap();
    behaviour_suite(&bucket, &reg).await;
    // Objects are plain files under the directory.
    assert!(dir.path().join("bkt/top.txt").is_file());
}

#[tokio::test]
async fn s3_behaviour() {
    let server = S3TestServer::start().await;
    server.create_bucket("thanos");
    // 5 MiB parts so that the large objects of the suite go through multipart uploads.
    let yaml = format!("{}  part_size: 5242880\n", server.objstore_yaml("thanos"));
    let cfg = BucketConfig::parse(&yaml).unwrap();
    assert_eq!(cfg.provider(), ProviderKind::S3);
    let reg = Registry::new();
    let bucket = cfg.build("test", &reg).unwrap();
    assert_eq!(bucket.name(), "thanos");
    behaviour_suite(&bucket, &reg).await;
    // S3 multipart ETags end with "-<number of parts>": 11 MiB in 5 MiB parts is 3 parts, the
    // 6 MiB local file 2 parts.
    let etag = |p: &'static str| {
        let bucket = bucket.clone();
        async move {
            bucket
                .attributes(&Path::from(p))
                .await
                .unwrap()
                .e_tag
                .unwrap_or_default()
        }
    };
    let big_etag = etag("blocks/01A/chunks/000002").await;
    assert!(big_etag.trim_matches('"').ends_with("-3"), "{big_etag}");
    let file_etag = etag("blocks/01B/chunks/000001").await;
    assert!(file_etag.trim_matches('"').ends_with("-2"), "{file_etag}");
    // The server stores objects as plain files: the content is really there.
    assert_eq!(
        std::fs::read(server.data_dir().join("thanos/top.txt")).unwrap(),
        b"top.txt"
    );
}

#[tokio::test]
async fn s3_rejects_wrong_credentials() {
    let server = S3TestServer::start().await;
    server.create_bucket("thanos");
    let yaml = thanos_test_support::objstore_yaml(
        &server.endpoint(),
        "thanos",
        server.access_key(),
        "wrong-secret",
    );
    let reg = Registry::new();
    let bucket = BucketConfig::parse(&yaml)
        .unwrap()
        .build("test", &reg)
        .unwrap();
    let err = bucket
        .upload(&Path::from("x"), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(!err.is_not_found(), "{err}");
    assert_eq!(failures(&reg, "thanos", "upload"), 1.0);
}

#[tokio::test]
async fn prefix_is_applied() {
    let server = S3TestServer::start().await;
    server.create_bucket("thanos");
    let yaml = format!("{}prefix: tenant-a/\n", server.objstore_yaml("thanos"));
    let cfg = BucketConfig::parse(&yaml).unwrap();
    assert_eq!(cfg.prefix(), "tenant-a");
    let bucket = cfg.build("test", &Registry::new()).unwrap();
    bucket
        .upload(&Path::from("01X/meta.json"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(
        server
            .data_dir()
            .join("thanos/tenant-a/01X/meta.json")
            .is_file()
    );
    let listed = bucket.list(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location.to_string(), "01X/meta.json");

    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {:?}\nprefix: p/q\n",
        dir.path().display().to_string()
    );
    let bucket = BucketConfig::parse(&yaml)
        .unwrap()
        .build("test", &Registry::new())
        .unwrap();
    bucket
        .upload(&Path::from("obj"), Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert!(dir.path().join("p/q/obj").is_file());
    assert_eq!(
        bucket.get(&Path::from("obj")).await.unwrap(),
        Bytes::from_static(b"1")
    );
}

#[tokio::test]
async fn metric_names_are_pinned_and_preinitialised() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {:?}\n",
        dir.path().display().to_string()
    );
    let cfg = BucketConfig::parse(&yaml).unwrap();
    let reg = Registry::new();
    let bucket = cfg.build("test", &reg).unwrap();
    let mut names: Vec<String> = reg.gather().iter().map(|f| f.name().to_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "thanos_objstore_bucket_last_successful_upload_time",
            "thanos_objstore_bucket_operation_duration_seconds",
            "thanos_objstore_bucket_operation_failures_total",
            "thanos_objstore_bucket_operation_fetched_bytes_total",
            "thanos_objstore_bucket_operation_transferred_bytes",
            "thanos_objstore_bucket_operations_total",
        ]
    );
    let name = bucket.name();
    for op in [
        "get",
        "get_range",
        "exists",
        "upload",
        "delete",
        "iter",
        "attributes",
    ] {
        assert_eq!(ops(&reg, name, op), 0.0, "{op}");
        assert_eq!(failures(&reg, name, op), 0.0, "{op}");
    }
    assert_eq!(
        metric(
            &reg,
            "thanos_objstore_bucket_last_successful_upload_time",
            &[("bucket", name)]
        ),
        Some(0.0)
    );
}
