//! Cross-checks with Debian's promtool: blocks promtool writes are read exactly, blocks we
//! write pass `promtool tsdb analyze` and `promtool tsdb dump` returns what we wrote, and
//! rewriting a promtool block with our writer reproduces its files byte for byte.

use crate::common;

use std::fs;
use std::path::Path;

use common::*;
use thanos_model::chunkenc::XorChunk;
use thanos_model::{Labels, Matcher, Sample};
use thanos_tsdb::block::{Block, BlockWriter, BlockWriterOptions, ChunkData, write_block};
use thanos_tsdb::meta::BlockMeta;

/// Reads every series and sample of `block` in index order as dump lines.
fn dump_with_our_reader(block: &Block) -> Vec<DumpLine> {
    let mut out = Vec::new();
    for r in block.index().all_postings().unwrap() {
        let (labels, samples) = block.series_samples(r).unwrap();
        for s in samples {
            out.push(DumpLine {
                labels: labels.to_string(),
                v: s.v,
                t: s.t,
            });
        }
    }
    out
}

#[test]
fn reads_promtool_blocks_sample_for_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let series = generate_series(1, 4, 6, 5);
    let input = tmp.path().join("in.om");
    write_openmetrics(&input, &series);
    let blocks = promtool_create_blocks(&input, &tmp.path().join("out"));
    assert!(
        blocks.len() >= 3,
        "expected several 2h blocks, got {blocks:?}"
    );
    let mut ours_all = Vec::new();
    let mut total = 0u64;
    for dir in &blocks {
        let block = Block::open(dir).unwrap();
        let ours = dump_with_our_reader(&block);
        let theirs = promtool_dump(&[dir.as_path()]);
        assert_eq!(
            ours.len(),
            theirs.len(),
            "sample count of {}",
            dir.display()
        );
        assert!(ours == theirs, "samples differ in {}", dir.display());
        assert_eq!(block.meta().stats.num_samples, ours.len() as u64);
        total += ours.len() as u64;
        ours_all.extend(ours);
    }
    // Every generated sample came back (across the blocks).
    let expected = expected_dump(&series);
    assert_eq!(total, expected.len() as u64);
    let key = |d: &DumpLine| (d.labels.clone(), d.t);
    ours_all.sort_by_key(key);
    let mut expected_sorted = expected;
    expected_sorted.sort_by_key(key);
    assert!(ours_all == expected_sorted);
}

#[test]
fn index_queries_on_a_promtool_block() {
    let tmp = tempfile::tempdir().unwrap();
    let series = generate_series(2, 3, 5, 1);
    let input = tmp.path().join("in.om");
    write_openmetrics(&input, &series);
    let blocks = promtool_create_blocks(&input, &tmp.path().join("out"));
    let block = Block::open(&blocks[0]).unwrap();
    let ix = block.index();
    assert_eq!(ix.label_names(), vec!["__name__", "instance", "job"]);
    assert_eq!(
        ix.label_values("__name__").unwrap(),
        vec!["metric_0", "metric_1", "metric_2"]
    );
    assert_eq!(ix.label_values("job").unwrap(), vec!["app", "node"]);
    assert!(ix.label_values("nope").unwrap().is_empty());

    // Brute force every matcher combination against label sets read from the index.
    let all: Vec<(u64, Labels)> = ix
        .all_postings()
        .unwrap()
        .into_iter()
        .map(|r| (r, ix.series(r).unwrap().0))
        .collect();
    assert_eq!(all.len(), series.len());
    let matcher_sets: Vec<Vec<Matcher>> = vec![
        vec![Matcher::equal("__name__", "metric_1")],
        vec![
            Matcher::equal("__name__", "metric_1"),
            Matcher::equal("job", "node"),
        ],
        vec![Matcher::new(thanos_model::MatchType::NotEqual, "job", "node").unwrap()],
        vec![
            Matcher::new(
                thanos_model::MatchType::RegexMatch,
                "instance",
                "host-[13].*",
            )
            .unwrap(),
        ],
        vec![
            Matcher::new(
                thanos_model::MatchType::RegexNoMatch,
                "__name__",
                "metric_[01]",
            )
            .unwrap(),
            Matcher::new(thanos_model::MatchType::RegexMatch, "job", ".*").unwrap(),
        ],
        vec![Matcher::equal("missing", "")],
        vec![Matcher::equal("job", "")],
        vec![Matcher::new(thanos_model::MatchType::NotEqual, "job", "").unwrap()],
        vec![Matcher::new(thanos_model::MatchType::RegexMatch, "missing", "x|").unwrap()],
    ];
    for ms in &matcher_sets {
        let got = ix.postings_for_matchers(ms).unwrap();
        let want: Vec<u64> = all
            .iter()
            .filter(|(_, l)| thanos_model::matcher::matches_labels(ms, l))
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(got, want, "matchers {ms:?}");
        let values = ix.label_values_for("instance", ms).unwrap();
        let mut want_values: Vec<String> = all
            .iter()
            .filter(|(_, l)| thanos_model::matcher::matches_labels(ms, l))
            .filter_map(|(_, l)| l.get("instance").map(str::to_string))
            .collect();
        want_values.sort();
        want_values.dedup();
        assert_eq!(values, want_values, "label values under {ms:?}");
    }
    // Symbols: every label string resolves both ways.
    for s in ix.symbols().unwrap() {
        let r = ix.symbol_ref(s).unwrap().unwrap();
        assert_eq!(ix.symbol(r).unwrap(), s);
    }
    assert_eq!(ix.symbol_ref("zzz-not-there").unwrap(), None);
}

fn to_chunks(samples: &[Sample], per_chunk: usize) -> Vec<ChunkData> {
    samples
        .chunks(per_chunk)
        .map(|part| {
            let mut c = XorChunk::new();
            for s in part {
                c.append(s.t, s.v);
            }
            ChunkData::from_xor(&c).unwrap()
        })
        .collect()
}

#[test]
fn blocks_we_write_pass_promtool_analyze_and_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let series = generate_series(3, 5, 8, 3);
    let data: Vec<(Labels, Vec<ChunkData>)> = series
        .iter()
        .map(|(l, s)| (l.clone(), to_chunks(s, 120)))
        .collect();
    // Small segments so that several chunk files and non-zero segment indexes are used.
    let opts = BlockWriterOptions {
        max_segment_size: 4 * 1024,
        ..BlockWriterOptions::default()
    };
    let meta = write_block(tmp.path(), &data, opts).unwrap().unwrap();
    let dir = tmp.path().join(meta.ulid.to_string());
    assert!(fs::read_dir(dir.join("chunks")).unwrap().count() > 1);
    assert_eq!(fs::read(dir.join("tombstones")).unwrap().len(), 9);

    let analyze = run_promtool(&[
        "tsdb",
        "analyze",
        tmp.path().to_str().unwrap(),
        &meta.ulid.to_string(),
    ]);
    assert!(analyze.contains(&meta.ulid.to_string()), "{analyze}");
    let dumped = promtool_dump(&[dir.as_path()]);
    let expected = expected_dump(&series);
    assert_eq!(dumped.len(), expected.len());
    assert!(
        dumped == expected,
        "promtool dump differs from what we wrote"
    );
    assert_eq!(meta.stats.num_samples, expected.len() as u64);
    assert_eq!(
        meta.min_time,
        series.iter().map(|s| s.1[0].t).min().unwrap()
    );

    // And our own reader agrees too.
    let block = Block::open(&dir).unwrap();
    assert!(dump_with_our_reader(&block) == expected);
}

#[test]
fn legacy_layout_blocks_pass_promtool_too() {
    let tmp = tempfile::tempdir().unwrap();
    let series = generate_series(4, 2, 3, 1);
    let data: Vec<(Labels, Vec<ChunkData>)> = series
        .iter()
        .map(|(l, s)| (l.clone(), to_chunks(s, 50)))
        .collect();
    let opts = BlockWriterOptions {
        legacy_label_indices: true,
        ..BlockWriterOptions::default()
    };
    let meta = write_block(tmp.path(), &data, opts).unwrap().unwrap();
    let dir = tmp.path().join(meta.ulid.to_string());
    run_promtool(&[
        "tsdb",
        "analyze",
        tmp.path().to_str().unwrap(),
        &meta.ulid.to_string(),
    ]);
    assert!(promtool_dump(&[dir.as_path()]) == expected_dump(&series));
}

/// Rewrites a promtool block through our reader and writer and compares the files.
fn rewrite_and_compare(src: &Path) {
    let block = Block::open(src).unwrap();
    let ix = block.index();
    let out = tempfile::tempdir().unwrap();
    let opts = BlockWriterOptions {
        ulid: Some(block.ulid()),
        legacy_label_indices: true,
        ..BlockWriterOptions::default()
    };
    let mut w = BlockWriter::new(out.path(), ix.symbols().unwrap(), opts).unwrap();
    for r in ix.all_postings().unwrap() {
        let (labels, metas) = ix.series(r).unwrap();
        let chunks: Vec<ChunkData> = metas
            .iter()
            .map(|m| {
                let c = block.chunks().chunk(m.chunk_ref).unwrap();
                ChunkData {
                    min_time: m.min_time,
                    max_time: m.max_time,
                    encoding: c.encoding,
                    data: c.data.to_vec(),
                }
            })
            .collect();
        w.add_series(&labels, &chunks).unwrap();
    }
    let mut meta = w.finish().unwrap().unwrap();
    let dst = out.path().join(block.ulid().to_string());
    for f in ["index", "chunks/000001", "tombstones"] {
        let a = fs::read(src.join(f)).unwrap();
        let b = fs::read(dst.join(f)).unwrap();
        assert!(a == b, "{f} differs ({} vs {} bytes)", a.len(), b.len());
    }
    // promtool 2.42 predates numFloatSamples; everything else must be identical.
    let written = BlockMeta::read_from_dir(&dst).unwrap();
    assert_eq!(written, meta);
    assert_eq!(meta.stats.num_float_samples, meta.stats.num_samples);
    meta.stats.num_float_samples = 0;
    assert_eq!(meta.to_json(), fs::read(src.join("meta.json")).unwrap());
}

#[test]
fn rewriting_promtool_blocks_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let series = generate_series(5, 3, 4, 3);
    let input = tmp.path().join("in.om");
    write_openmetrics(&input, &series);
    let blocks = promtool_create_blocks(&input, &tmp.path().join("out"));
    assert!(!blocks.is_empty());
    for b in &blocks {
        rewrite_and_compare(b);
    }
}

#[test]
fn merging_promtool_blocks_matches_promtool_dump_of_the_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    // Two backfills of overlapping data: the second repeats part of the first (duplicates)
    // and adds series of its own.
    let first = generate_series(8, 2, 3, 5);
    let second: SeriesData = generate_series(9, 3, 3, 3);
    let overlap: SeriesData = first
        .iter()
        .map(|(l, s)| (l.clone(), s[s.len() / 3..s.len() / 2].to_vec()))
        .collect();
    let mut blocks = Vec::new();
    for (i, data) in [first, second, overlap].iter().enumerate() {
        let input = tmp.path().join(format!("in{i}.om"));
        write_openmetrics(&input, data);
        blocks.extend(promtool_create_blocks(
            &input,
            &tmp.path().join(format!("out{i}")),
        ));
    }
    let opened: Vec<Block> = blocks.iter().map(|b| Block::open(b).unwrap()).collect();
    let out = tempfile::tempdir().unwrap();
    let meta = thanos_tsdb::merge_blocks(out.path(), &opened, BlockWriterOptions::default())
        .unwrap()
        .unwrap();
    let merged_dir = out.path().join(meta.ulid.to_string());
    run_promtool(&[
        "tsdb",
        "analyze",
        out.path().to_str().unwrap(),
        &meta.ulid.to_string(),
    ]);
    let inputs: Vec<&Path> = blocks.iter().map(|b| b.as_path()).collect();
    let want = promtool_dump(&inputs);
    let got = promtool_dump(&[merged_dir.as_path()]);
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "merged block differs from the union of its inputs"
    );
    assert_eq!(meta.stats.num_samples, want.len() as u64);
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.parents.len(), blocks.len());
}
