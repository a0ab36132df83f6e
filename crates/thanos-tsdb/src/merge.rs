//! Merging N blocks into one (what Prometheus's `LeveledCompactor` does, and what receive's
//! head compaction and the compactor need).
//!
//! Series are merged in label order. Per series, chunks that neither overlap nor carry
//! tombstones are copied verbatim; otherwise the float samples are decoded, tombstoned
//! samples dropped, duplicates removed (for equal timestamps the sample of the block
//! listed first wins) and re-encoded as XOR chunks of at most 120 samples, as
//! Prometheus's compactor does.

use std::collections::BTreeSet;
use std::path::Path;

use thanos_model::chunkenc::{XorChunk, float_iterator};
use thanos_model::{Labels, Sample};

use crate::block::{Block, BlockWriter, BlockWriterOptions, ChunkData};
use crate::chunks::{CHUNKS_DIR, segment_name, split_chunk_ref};
use crate::error::{Error, Result};
use crate::index::{ChunkMeta, SeriesRef};
use crate::meta::{BlockDesc, BlockMeta, BlockMetaCompaction};

/// Samples per re-encoded chunk, as Prometheus's compactor.
pub const SAMPLES_PER_CHUNK: usize = 120;

struct Cursor<'a> {
    block: &'a Block,
    refs: Vec<SeriesRef>,
    pos: usize,
    cur: Option<(Labels, SeriesRef, Vec<ChunkMeta>)>,
}

impl<'a> Cursor<'a> {
    fn new(block: &'a Block) -> Result<Self> {
        let refs = block
            .index()
            .all_postings()
            .map_err(|e| e.in_block(block.ulid()))?;
        let mut c = Self {
            block,
            refs,
            pos: 0,
            cur: None,
        };
        c.advance()?;
        Ok(c)
    }

    fn advance(&mut self) -> Result<()> {
        self.cur = match self.refs.get(self.pos) {
            Some(&r) => {
                let (l, m) = self
                    .block
                    .index()
                    .series(r)
                    .map_err(|e| e.in_block(self.block.ulid()))?;
                Some((l, r, m))
            }
            None => None,
        };
        self.pos += 1;
        Ok(())
    }
}

/// Merges `blocks` into one new block under `parent` and returns its meta (`None` when
/// the result holds no samples). `opts.time_range` and `opts.compaction` default to the
/// union of the inputs' ranges and a compaction record with level max+1, the union of
/// sources and the inputs as parents.
pub fn merge_blocks(
    parent: &Path,
    blocks: &[Block],
    mut opts: BlockWriterOptions,
) -> Result<Option<BlockMeta>> {
    let mut symbols: BTreeSet<String> = BTreeSet::new();
    for b in blocks {
        let syms = b.index().symbols().map_err(|e| e.in_block(b.ulid()))?;
        symbols.extend(syms.into_iter().map(str::to_string));
    }
    if opts.time_range.is_none() && !blocks.is_empty() {
        let min = blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
        let max = blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
        opts.time_range = Some((min, max));
    }
    if opts.compaction.is_none() {
        let sources: BTreeSet<_> = blocks
            .iter()
            .flat_map(|b| b.meta().compaction.sources.iter().copied())
            .collect();
        opts.compaction = Some(BlockMetaCompaction {
            level: blocks
                .iter()
                .map(|b| b.meta().compaction.level)
                .max()
                .unwrap_or(0)
                + 1,
            sources: sources.into_iter().collect(),
            parents: blocks
                .iter()
                .map(|b| BlockDesc {
                    ulid: b.ulid(),
                    min_time: b.meta().min_time,
                    max_time: b.meta().max_time,
                })
                .collect(),
            ..BlockMetaCompaction::default()
        });
    }
    let mut w = BlockWriter::new(parent, &symbols, opts)?;
    drop(symbols);
    let mut cursors = blocks.iter().map(Cursor::new).collect::<Result<Vec<_>>>()?;
    while let Some(min) = cursors
        .iter()
        .filter_map(|c| c.cur.as_ref().map(|x| &x.0))
        .min()
        .cloned()
    {
        let mut parts: Vec<(&Block, SeriesRef, Vec<ChunkMeta>)> = Vec::new();
        for c in cursors.iter_mut() {
            if c.cur.as_ref().is_some_and(|x| x.0 == min) {
                if let Some((_, r, m)) = c.cur.take() {
                    parts.push((c.block, r, m));
                }
                c.advance()?;
            }
        }
        let chunks = merge_series(&parts)?;
        w.add_series(&min, &chunks)?;
    }
    w.finish()
}

fn chunk_error(block: &Block, chunk_ref: u64, source: thanos_model::ChunkError) -> Error {
    Error::Chunk {
        file: format!(
            "{CHUNKS_DIR}/{}",
            segment_name(split_chunk_ref(chunk_ref).0)
        ),
        chunk_ref,
        source,
    }
    .in_block(block.ulid())
}

/// The chunks of one series present in several blocks.
fn merge_series(parts: &[(&Block, SeriesRef, Vec<ChunkMeta>)]) -> Result<Vec<ChunkData>> {
    let mut all: Vec<(&Block, ChunkMeta)> = parts
        .iter()
        .flat_map(|(b, _, metas)| metas.iter().map(move |m| (*b, *m)))
        .collect();
    all.sort_by_key(|(_, m)| (m.min_time, m.max_time));
    let overlapping = all.windows(2).any(|w| w[1].1.min_time <= w[0].1.max_time);
    let tombstoned = parts
        .iter()
        .any(|(b, r, _)| !b.tombstones().intervals(*r).is_empty());
    if !overlapping && !tombstoned {
        return all
            .iter()
            .map(|(b, m)| {
                let c = b
                    .chunks()
                    .chunk(m.chunk_ref)
                    .map_err(|e| e.in_block(b.ulid()))?;
                Ok(ChunkData {
                    min_time: m.min_time,
                    max_time: m.max_time,
                    encoding: c.encoding,
                    data: c.data.to_vec(),
                })
            })
            .collect();
    }
    // Decode in block order so that a stable sort keeps the first block's duplicate.
    let mut samples: Vec<Sample> = Vec::new();
    for (b, r, metas) in parts {
        for m in metas {
            let c = b
                .chunks()
                .chunk(m.chunk_ref)
                .map_err(|e| e.in_block(b.ulid()))?;
            let mut it =
                float_iterator(c.encoding, c.data).map_err(|e| chunk_error(b, m.chunk_ref, e))?;
            samples.extend((&mut it).filter(|s| !b.tombstones().is_deleted(*r, s.t)));
            if let Some(e) = it.err() {
                return Err(chunk_error(b, m.chunk_ref, e.clone()));
            }
        }
    }
    samples.sort_by_key(|s| s.t);
    samples.dedup_by_key(|s| s.t);
    Ok(encode_xor_chunks(&samples))
}

/// Encodes samples (sorted, unique timestamps) as XOR chunks of at most 120 samples.
pub fn encode_xor_chunks(samples: &[Sample]) -> Vec<ChunkData> {
    samples
        .chunks(SAMPLES_PER_CHUNK)
        .filter_map(|part| {
            let mut c = XorChunk::new();
            for s in part {
                c.append(s.t, s.v);
            }
            ChunkData::from_xor(&c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::write_block;

    fn series(name: &str, ts: impl IntoIterator<Item = i64>, v: f64) -> (Labels, Vec<Sample>) {
        (
            Labels::from_pairs([("__name__", name)]),
            ts.into_iter().map(|t| Sample::new(t, v)).collect(),
        )
    }

    fn write(dir: &Path, data: &[(Labels, Vec<Sample>)]) -> Block {
        let input: Vec<(Labels, Vec<ChunkData>)> = data
            .iter()
            .map(|(l, s)| (l.clone(), encode_xor_chunks(s)))
            .collect();
        let meta = write_block(dir, &input, BlockWriterOptions::default())
            .unwrap()
            .unwrap();
        Block::open(&dir.join(meta.ulid.to_string())).unwrap()
    }

    #[test]
    fn merges_overlapping_and_disjoint_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write(
            tmp.path(),
            &[series("a", 0..200, 1.0), series("c", 0..10, 3.0)],
        );
        // Overlaps "a" (duplicates at 100..200 must be dropped, block a's values win).
        let b = write(
            tmp.path(),
            &[series("a", 100..300, 2.0), series("b", 0..5, 5.0)],
        );
        // Disjoint in time for "c": chunks copied verbatim.
        let c = write(tmp.path(), &[series("c", 1000..1010, 4.0)]);
        let out = tempfile::tempdir().unwrap();
        let meta = merge_blocks(
            out.path(),
            &[a.clone(), b.clone(), c.clone()],
            BlockWriterOptions::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(meta.compaction.level, 2);
        assert_eq!(meta.compaction.parents.len(), 3);
        let mut sources = vec![a.ulid(), b.ulid(), c.ulid()];
        sources.sort();
        assert_eq!(meta.compaction.sources, sources);
        assert_eq!((meta.min_time, meta.max_time), (0, 1010));
        let m = Block::open(&out.path().join(meta.ulid.to_string())).unwrap();
        let refs = m.index().all_postings().unwrap();
        assert_eq!(refs.len(), 3);
        let (l, s) = m.series_samples(refs[0]).unwrap();
        assert_eq!(l.metric_name(), Some("a"));
        assert_eq!(s.len(), 300);
        assert!(s.windows(2).all(|w| w[0].t + 1 == w[1].t));
        assert!(s[..200].iter().all(|x| x.v == 1.0));
        assert!(s[200..].iter().all(|x| x.v == 2.0));
        let (_, s) = m.series_samples(refs[2]).unwrap();
        assert_eq!(s.len(), 20);
        assert_eq!(meta.stats.num_samples, 300 + 5 + 20);
        // "c" was copied verbatim: same chunk bytes as in the inputs.
        let (_, metas) = m.index().series(refs[2]).unwrap();
        let (_, cmeta) = c
            .index()
            .series(c.index().all_postings().unwrap()[0])
            .unwrap();
        assert_eq!(
            m.chunks().chunk(metas[1].chunk_ref).unwrap(),
            c.chunks().chunk(cmeta[0].chunk_ref).unwrap()
        );
    }

    #[test]
    fn tombstones_are_applied() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write(tmp.path(), &[series("a", 0..50, 1.0)]);
        let dir = a.dir().unwrap().to_path_buf();
        let mut t = crate::tombstones::Tombstones::new();
        t.add(a.index().all_postings().unwrap()[0], 10, 19);
        t.write_to_dir(&dir).unwrap();
        let a = Block::open(&dir).unwrap();
        let out = tempfile::tempdir().unwrap();
        let meta = merge_blocks(out.path(), &[a], BlockWriterOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(meta.stats.num_samples, 40);
        let m = Block::open(&out.path().join(meta.ulid.to_string())).unwrap();
        let (_, s) = m
            .series_samples(m.index().all_postings().unwrap()[0])
            .unwrap();
        assert!(s.iter().all(|x| !(10..=19).contains(&x.t)));
    }
}
