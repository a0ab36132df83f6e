//! Blocks cut from the head of a running Prometheus (10s block range, scraping itself every
//! second) are read sample for sample like `promtool tsdb dump` prints them.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use thanos_tsdb::Block;

fn block_dirs(data: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        // Only finished blocks: named by a bare ULID (not `*.tmp-for-creation`).
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| ulid::Ulid::from_string(n).is_ok())
                && p.join("meta.json").exists()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn reads_blocks_compacted_by_a_running_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = tmp.path().join("prometheus.yml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let guard = start_prometheus(
        &config,
        &data,
        port,
        &[
            "--storage.tsdb.min-block-duration=10s",
            "--storage.tsdb.max-block-duration=10s",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while block_dirs(&data).len() < 2 {
        assert!(Instant::now() < deadline, "prometheus cut no blocks");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(guard);
    let blocks = block_dirs(&data);
    for dir in &blocks {
        let block = Block::open(dir).unwrap();
        assert_eq!(block.meta().compaction.level, 1);
        // Head-cut blocks carry the empty string as a symbol.
        assert_eq!(block.index().symbol(0).unwrap(), "");
        let mut ours = Vec::new();
        for r in block.index().all_postings().unwrap() {
            let (labels, samples) = block.series_samples(r).unwrap();
            for s in samples {
                ours.push(DumpLine {
                    labels: labels.to_string(),
                    v: s.v,
                    t: s.t,
                });
            }
        }
        let theirs = promtool_dump(&[dir.as_path()]);
        assert!(!ours.is_empty());
        assert_eq!(ours.len(), theirs.len(), "{}", dir.display());
        assert!(ours == theirs, "samples differ in {}", dir.display());
        assert_eq!(block.meta().stats.num_samples, ours.len() as u64);
    }
}
