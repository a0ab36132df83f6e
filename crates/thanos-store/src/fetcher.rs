//! Block discovery: lists the bucket, reads each block's `meta.json` and applies Thanos's
//! meta filters (mirrors `pkg/block` `MetaFetcher` and its filters).
//!
//! Discovery is the `concurrent` strategy: one delimiter listing of the bucket root for the
//! ULID directories, then one delimiter listing per block directory, which tells at once
//! whether `meta.json` (block complete), `deletion-mark.json` and `no-compact-mark.json`
//! exist. `meta.json` is immutable, so it is downloaded once and cached on disk under
//! `<data-dir>/meta-syncer/<ULID>/meta.json`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use thanos_model::Labels;
use thanos_model::relabel::{self, RelabelConfig};
use thanos_objstore::{Bucket, Path};
use thanos_tsdb::BlockMeta;
use ulid::Ulid;

use crate::error::{Error, Result};

/// Meta file name inside a block directory.
pub const META_FILENAME: &str = "meta.json";
/// Deletion marker file name.
pub const DELETION_MARK_FILENAME: &str = "deletion-mark.json";
/// No-compact marker file name.
pub const NO_COMPACT_MARK_FILENAME: &str = "no-compact-mark.json";

/// Label carrying the block's ULID during selector relabelling (Thanos's `__block_id`).
pub const BLOCK_ID_LABEL: &str = "__block_id";

/// Sources whose blocks are exempt from the consistency delay (their blocks are uploaded
/// only once complete and consistent).
const CONSISTENCY_EXEMPT_SOURCES: &[&str] = &["compactor", "compactor.repair"];

/// Filters applied to discovered blocks.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    /// Blocks whose `maxTime` is before this (ms) are ignored (`--min-time`).
    pub min_time: i64,
    /// Blocks whose `minTime` is after this (ms) are ignored (`--max-time`).
    pub max_time: i64,
    /// Blocks younger than this (by ULID time) are ignored, unless produced by the
    /// compactor (`--consistency-delay`).
    pub consistency_delay: Duration,
    /// Blocks whose deletion mark is older than this are ignored
    /// (`--ignore-deletion-marks-delay`).
    pub ignore_deletion_marks_delay: Duration,
    /// Parallel per-block meta fetches (`--block-meta-fetch-concurrency`).
    pub meta_fetch_concurrency: usize,
    /// `--selector.relabel-config`: applied to each block's external labels plus
    /// `__block_id` (its ULID); a block whose result is dropped or empty is not loaded
    /// (sync state `label-excluded`). Empty: every block passes.
    pub relabel: Vec<RelabelConfig>,
}

impl Default for FilterOptions {
    fn default() -> Self {
        Self {
            min_time: i64::MIN,
            max_time: i64::MAX,
            consistency_delay: Duration::ZERO,
            ignore_deletion_marks_delay: Duration::from_secs(24 * 3600),
            meta_fetch_concurrency: 32,
            relabel: Vec::new(),
        }
    }
}

/// Result of one discovery pass.
#[derive(Debug, Default)]
pub struct FetchResult {
    /// Blocks that passed every filter.
    pub metas: BTreeMap<Ulid, BlockMeta>,
    /// Count of blocks per sync state (`thanos_blocks_meta_synced{state}`).
    pub states: BTreeMap<&'static str, i64>,
}

#[derive(Debug, Deserialize)]
struct DeletionMark {
    deletion_time: i64,
}

/// What one block directory turned out to be.
enum Outcome {
    Keep(Box<BlockMeta>, bool),
    Drop(&'static str),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Lists the ULID directories at the bucket root.
async fn list_block_dirs(bucket: &Bucket) -> Result<Vec<Ulid>> {
    let listing = bucket
        .list_with_delimiter(None)
        .await
        .map_err(|e| Error::bucket("list block directories", e))?;
    let mut out: Vec<Ulid> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(|n| Ulid::from_string(n).ok()))
        .collect();
    out.sort();
    Ok(out)
}

/// Reads `meta.json` of `id`: from `known` (already loaded), the on-disk cache, or the
/// bucket (then cached). `Ok(None)` means the content does not parse.
async fn read_meta(
    bucket: &Bucket,
    id: Ulid,
    cache_dir: &FsPath,
    known: &HashMap<Ulid, BlockMeta>,
) -> Result<Option<BlockMeta>> {
    if let Some(m) = known.get(&id) {
        return Ok(Some(m.clone()));
    }
    let local = cache_dir.join(id.to_string()).join(META_FILENAME);
    if let Ok(data) = tokio::fs::read(&local).await {
        match BlockMeta::from_json(&data, &local.display().to_string()) {
            Ok(m) if m.ulid == id => return Ok(Some(m)),
            _ => {
                tracing::warn!(block = %id, path = %local.display(), "ignoring unreadable cached meta.json");
            }
        }
    }
    let path = Path::from(format!("{id}/{META_FILENAME}"));
    let data = bucket
        .get(&path)
        .await
        .map_err(|e| Error::bucket(format!("fetch meta.json of block {id}"), e))?;
    let meta = match BlockMeta::from_json(&data, path.as_ref()) {
        Ok(m) if m.ulid == id => m,
        Ok(m) => {
            tracing::warn!(block = %id, meta_ulid = %m.ulid, "meta.json ulid does not match its directory");
            return Ok(None);
        }
        Err(err) => {
            tracing::warn!(block = %id, err = %err, "corrupted meta.json");
            return Ok(None);
        }
    };
    if let Some(dir) = local.parent() {
        let write = async {
            tokio::fs::create_dir_all(dir).await?;
            let tmp = local.with_extension("json.tmp");
            tokio::fs::write(&tmp, &data).await?;
            tokio::fs::rename(&tmp, &local).await
        };
        if let Err(err) = write.await {
            tracing::warn!(block = %id, path = %local.display(), err = %err, "caching meta.json on disk");
        }
    }
    Ok(Some(meta))
}

async fn inspect_block(
    bucket: &Bucket,
    id: Ulid,
    opts: &FilterOptions,
    cache_dir: &FsPath,
    known: &HashMap<Ulid, BlockMeta>,
) -> Result<Outcome> {
    let dir = Path::from(id.to_string());
    let listing = bucket
        .list_with_delimiter(Some(&dir))
        .await
        .map_err(|e| Error::bucket(format!("list block {id}"), e))?;
    let has = |name: &str| {
        listing
            .objects
            .iter()
            .any(|o| o.location.filename() == Some(name))
    };
    if !has(META_FILENAME) {
        tracing::info!(block = %id, "skipping partial block without meta.json");
        return Ok(Outcome::Drop("no-meta-json"));
    }
    let Some(meta) = read_meta(bucket, id, cache_dir, known).await? else {
        return Ok(Outcome::Drop("corrupted-meta-json"));
    };
    if meta.max_time < opts.min_time || meta.min_time > opts.max_time {
        return Ok(Outcome::Drop("time-excluded"));
    }
    if !selected_by_relabel(&meta, &opts.relabel) {
        tracing::debug!(block = %id, "block excluded by the selector relabel config");
        return Ok(Outcome::Drop("label-excluded"));
    }
    let source = meta
        .thanos
        .as_ref()
        .map(|t| t.source.as_str())
        .unwrap_or("");
    if !CONSISTENCY_EXEMPT_SOURCES.contains(&source) && !opts.consistency_delay.is_zero() {
        let age_ms = now_ms() - i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX);
        if age_ms < i64::try_from(opts.consistency_delay.as_millis()).unwrap_or(i64::MAX) {
            tracing::debug!(block = %id, age_ms, "block is too fresh");
            return Ok(Outcome::Drop("too-fresh"));
        }
    }
    if has(DELETION_MARK_FILENAME) {
        let path = Path::from(format!("{id}/{DELETION_MARK_FILENAME}"));
        match bucket.get(&path).await {
            Ok(data) => match serde_json::from_slice::<DeletionMark>(&data) {
                Ok(mark) => {
                    let age_s = now_ms() / 1000 - mark.deletion_time;
                    let delay = i64::try_from(opts.ignore_deletion_marks_delay.as_secs())
                        .unwrap_or(i64::MAX);
                    if age_s > delay {
                        return Ok(Outcome::Drop("marked-for-deletion"));
                    }
                }
                Err(err) => {
                    tracing::warn!(block = %id, err = %err, "ignoring unparsable deletion mark");
                }
            },
            Err(err) if err.is_not_found() => {}
            Err(err) => {
                return Err(Error::bucket(
                    format!("fetch deletion mark of block {id}"),
                    err,
                ));
            }
        }
    }
    Ok(Outcome::Keep(Box::new(meta), has(NO_COMPACT_MARK_FILENAME)))
}

/// Thanos's label-shard filter: relabels the block's external labels plus `__block_id`;
/// the block is selected unless the result is dropped or empty.
pub fn selected_by_relabel(meta: &BlockMeta, configs: &[RelabelConfig]) -> bool {
    if configs.is_empty() {
        return true;
    }
    let ulid = meta.ulid.to_string();
    let ext = meta.thanos.as_ref().map(|t| &t.labels);
    let labels = Labels::from_pairs(
        ext.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([(BLOCK_ID_LABEL, ulid.as_str())]),
    );
    relabel::process(&labels, configs).is_some_and(|l| !l.is_empty())
}

/// Discovers the blocks of `bucket` and filters them. `known` holds metas already loaded
/// (not re-read); `data_dir` is the store's data directory (meta cache under
/// `meta-syncer/`). A listing or fetch error fails the whole pass, so that a flaky bucket
/// never makes loaded blocks disappear.
pub async fn fetch_metas(
    bucket: &Bucket,
    opts: &FilterOptions,
    data_dir: &FsPath,
    known: &HashMap<Ulid, BlockMeta>,
) -> Result<FetchResult> {
    let ids = list_block_dirs(bucket).await?;
    let cache_dir: PathBuf = data_dir.join("meta-syncer");
    let outcomes: Vec<(Ulid, Outcome)> = futures::stream::iter(ids)
        .map(|id| {
            let cache_dir = &cache_dir;
            async move {
                inspect_block(bucket, id, opts, cache_dir, known)
                    .await
                    .map(|o| (id, o))
            }
        })
        .buffer_unordered(opts.meta_fetch_concurrency.max(1))
        .try_collect()
        .await?;
    let mut res = FetchResult::default();
    let mut kept = BTreeMap::new();
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Keep(meta, no_compact) => {
                if no_compact {
                    *res.states.entry("marked-for-no-compact").or_default() += 1;
                }
                kept.insert(id, *meta);
            }
            Outcome::Drop(state) => *res.states.entry(state).or_default() += 1,
        }
    }
    let duplicates = duplicate_blocks(&kept);
    for id in &duplicates {
        kept.remove(id);
        *res.states.entry("duplicate").or_default() += 1;
    }
    res.metas = kept;
    Ok(res)
}

/// The compaction sources of a block (itself when the list is empty).
fn sources(meta: &BlockMeta) -> BTreeSet<Ulid> {
    if meta.compaction.sources.is_empty() {
        BTreeSet::from([meta.ulid])
    } else {
        meta.compaction.sources.iter().copied().collect()
    }
}

/// Blocks whose compaction sources are all contained in another block with the same
/// external labels and resolution (the compactor has not deleted its inputs yet). Of two
/// blocks with identical sources the one with the higher ULID is kept.
fn duplicate_blocks(metas: &BTreeMap<Ulid, BlockMeta>) -> Vec<Ulid> {
    let group = |m: &BlockMeta| {
        m.thanos
            .as_ref()
            .map(|t| (t.labels.clone(), t.downsample.resolution))
            .unwrap_or_default()
    };
    let srcs: BTreeMap<Ulid, BTreeSet<Ulid>> =
        metas.iter().map(|(id, m)| (*id, sources(m))).collect();
    let mut out = Vec::new();
    for (id, m) in metas {
        let mine = &srcs[id];
        let covered = metas.iter().any(|(other, om)| {
            other != id
                && group(om) == group(m)
                && mine.is_subset(&srcs[other])
                && (mine.len() < srcs[other].len() || other > id)
        });
        if covered {
            out.push(*id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_tsdb::meta::{BlockStats, ThanosMeta};

    fn meta(id: u64, sources: &[u64], region: &str) -> (Ulid, BlockMeta) {
        let ulid = Ulid::from_parts(id, 0);
        let mut m = BlockMeta::new_level1(ulid, 0, 10, BlockStats::default());
        m.compaction.sources = sources.iter().map(|&s| Ulid::from_parts(s, 0)).collect();
        m.thanos = Some(ThanosMeta {
            labels: BTreeMap::from([("region".to_string(), region.to_string())]),
            ..ThanosMeta::default()
        });
        (ulid, m)
    }

    #[test]
    fn relabel_selects_on_external_labels_and_block_id() {
        let (_, m) = meta(1, &[1], "eu");
        let keep_eu =
            relabel::parse_yaml("- source_labels: [region]\n  regex: eu\n  action: keep").unwrap();
        assert!(selected_by_relabel(&m, &keep_eu));
        let (_, us) = meta(2, &[2], "us");
        assert!(!selected_by_relabel(&us, &keep_eu));
        let by_id = relabel::parse_yaml(&format!(
            "- source_labels: [__block_id]\n  regex: '{}'\n  action: drop",
            m.ulid
        ))
        .unwrap();
        assert!(!selected_by_relabel(&m, &by_id));
        assert!(selected_by_relabel(&us, &by_id));
        // Dropping every label leaves an empty set: excluded, as in Thanos.
        let all = relabel::parse_yaml("- regex: '.*'\n  action: labeldrop").unwrap();
        assert!(!selected_by_relabel(&m, &all));
        assert!(selected_by_relabel(&m, &[]));
    }

    #[test]
    fn blocks_covered_by_a_compacted_block_are_duplicates() {
        let metas: BTreeMap<Ulid, BlockMeta> = [
            meta(1, &[1], "a"),
            meta(2, &[2], "a"),
            meta(3, &[1, 2], "a"),
            meta(4, &[4], "a"),
            // Same sources, other labels: not a duplicate.
            meta(5, &[1], "b"),
            // Identical source sets: the higher ULID wins.
            meta(6, &[4], "a"),
        ]
        .into_iter()
        .collect();
        let d = duplicate_blocks(&metas);
        let ids: Vec<u64> = d.iter().map(|u| u.timestamp_ms()).collect();
        assert_eq!(ids, vec![1, 2, 4]);
    }
}
