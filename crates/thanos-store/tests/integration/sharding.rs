//! Selector relabel sharding (`--selector.relabel-config`): gateways over one FILESYSTEM
//! bucket each load only the blocks their relabel rules keep, judged on the blocks'
//! external labels plus `__block_id`.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use prometheus::Registry;
use thanos_proto::thanos::label_matcher::Type;
use thanos_store::relabel::{self, hashmod_hash};
use thanos_store::{BucketStore, BucketStoreOptions, FilterOptions};
use ulid::Ulid;

/// Uploads ten blocks (promtool's blocks under new ULIDs), half `region=eu`, half
/// `region=us`, each with its own `idx` label (so no two blocks' series merge). Returns
/// their ids and regions.
async fn ten_blocks(root: &std::path::Path, ds: &Dataset) -> Vec<(Ulid, &'static str)> {
    let bucket = fs_bucket(&root.join("bucket"), &Registry::new());
    let mut out = Vec::new();
    for i in 0..10u64 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        let src = &ds.blocks[i as usize % ds.blocks.len()];
        let id = Ulid::from_parts(1_700_000_000_000 + i, u128::from(i) * 7919 + 1);
        let idx = i.to_string();
        upload_block(&bucket, src, &[("region", region), ("idx", &idx)], Some(id)).await;
        out.push((id, region));
    }
    out
}

async fn gateway(
    root: &std::path::Path,
    name: &str,
    relabel_yaml: &str,
) -> (BucketStore, Registry) {
    let registry = Registry::new();
    let bucket = fs_bucket(&root.join("bucket"), &registry);
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: root.join(name),
            filters: FilterOptions {
                relabel: relabel::parse_yaml(relabel_yaml).unwrap(),
                ..FilterOptions::default()
            },
            ..BucketStoreOptions::default()
        },
        &registry,
    )
    .unwrap();
    store.sync().await.unwrap();
    (store, registry)
}

fn loaded(store: &BucketStore) -> BTreeSet<Ulid> {
    store.blocks().iter().map(|b| b.id).collect()
}

fn shard_yaml(keep: u64) -> String {
    format!(
        "- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: 2\n\
         - action: keep\n  source_labels: [shard]\n  regex: {keep}\n"
    )
}

fn synced_state(registry: &Registry, state: &str) -> f64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == "thanos_blocks_meta_synced")
        .and_then(|f| {
            f.get_metric()
                .iter()
                .find(|m| m.get_label().iter().any(|l| l.value() == state))
                .map(|m| m.get_gauge().get_value())
        })
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashmod_shards_are_disjoint_and_cover_every_block() {
    let ds = dataset(2, 4);
    let root = tempfile::tempdir().unwrap();
    let blocks = ten_blocks(root.path(), &ds).await;
    let all: BTreeSet<Ulid> = blocks.iter().map(|b| b.0).collect();

    let (s0, r0) = gateway(root.path(), "data0", &shard_yaml(0)).await;
    let (s1, r1) = gateway(root.path(), "data1", &shard_yaml(1)).await;
    let (l0, l1) = (loaded(&s0), loaded(&s1));
    assert!(l0.is_disjoint(&l1), "{l0:?} vs {l1:?}");
    assert_eq!(&l0 | &l1, all);
    // Each shard is exactly what the hash says (computed from the ULID string).
    let expect0: BTreeSet<Ulid> = all
        .iter()
        .copied()
        .filter(|id| hashmod_hash(&id.to_string()).is_multiple_of(2))
        .collect();
    assert_eq!(l0, expect0);
    assert!(!l0.is_empty() && !l1.is_empty(), "both shards hold blocks");
    assert_eq!(synced_state(&r0, "label-excluded"), l1.len() as f64);
    assert_eq!(synced_state(&r1, "label-excluded"), l0.len() as f64);
    assert_eq!(synced_state(&r0, "loaded"), l0.len() as f64);

    // Excluded blocks leave no index-header behind.
    for id in &l1 {
        assert!(!root.path().join("data0").join(id.to_string()).exists());
    }
    // Queries only touch the shard's blocks: together the two gateways return exactly
    // the series and chunks of an unsharded gateway.
    let req = series_request(vec![m(Type::Re, "__name__", "metric_.*")], 0, i64::MAX);
    let a = s0.series(&req).await.unwrap();
    let b = s1.series(&req).await.unwrap();
    assert!(!a.is_empty() && !b.is_empty());
    let chunks =
        |v: &[thanos_proto::thanos::Series]| -> usize { v.iter().map(|s| s.chunks.len()).sum() };
    let (s_all, _) = gateway(root.path(), "data-all", "").await;
    assert_eq!(loaded(&s_all), all);
    let whole = s_all.series(&req).await.unwrap();
    assert_eq!(chunks(&a) + chunks(&b), chunks(&whole));
    assert_eq!(a.len() + b.len(), whole.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_on_an_external_label() {
    let ds = dataset(1, 2);
    let root = tempfile::tempdir().unwrap();
    let blocks = ten_blocks(root.path(), &ds).await;
    let (eu, registry) = gateway(
        root.path(),
        "data-eu",
        "- action: keep\n  source_labels: [region]\n  regex: eu\n",
    )
    .await;
    let want: BTreeSet<Ulid> = blocks.iter().filter(|b| b.1 == "eu").map(|b| b.0).collect();
    assert_eq!(loaded(&eu), want);
    assert_eq!(synced_state(&registry, "label-excluded"), 5.0);
    let info = eu.info().unwrap();
    let sets: Vec<String> = info
        .label_sets
        .iter()
        .map(|s| format!("{:?}", s.labels))
        .collect();
    assert_eq!(sets.len(), 5, "{sets:?}");
    for s in &sets {
        assert!(s.contains("\"eu\"") && !s.contains("\"us\""), "{sets:?}");
    }

    // Dropping by block id on top of it.
    let first = *want.iter().next().unwrap();
    let (fewer, _) = gateway(
        root.path(),
        "data-eu2",
        &format!(
            "- action: keep\n  source_labels: [region]\n  regex: eu\n\
             - action: drop\n  source_labels: [__block_id]\n  regex: '{first}'\n"
        ),
    )
    .await;
    let mut expect = want.clone();
    expect.remove(&first);
    assert_eq!(loaded(&fewer), expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_shard_unloads_and_removes_excluded_blocks() {
    let ds = dataset(1, 2);
    let root = tempfile::tempdir().unwrap();
    let blocks = ten_blocks(root.path(), &ds).await;
    let data = root.path().join("data");
    let (all, _) = gateway(root.path(), "data", "").await;
    assert_eq!(all.blocks().len(), blocks.len());
    for (id, _) in &blocks {
        assert!(data.join(id.to_string()).join("index-header").exists());
    }
    drop(all);
    // Same data dir, now sharded: excluded blocks are not loaded and their local files
    // are deleted; kept ones reuse their index-headers.
    let (shard, _) = gateway(root.path(), "data", &shard_yaml(1)).await;
    let kept = loaded(&shard);
    assert!(!kept.is_empty() && kept.len() < blocks.len());
    for (id, _) in &blocks {
        let local = data.join(id.to_string()).exists();
        assert_eq!(local, kept.contains(id), "{id}");
    }
}
