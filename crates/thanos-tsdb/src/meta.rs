//! `meta.json`: the block descriptor, with Prometheus's fields and Thanos's `thanos` section.
//!
//! Mirrors Prometheus's `tsdb.BlockMeta` and Thanos's `pkg/block/metadata`. Key names,
//! key order and omitted-when-empty rules follow the Go structs so that a meta written
//! here is byte-identical to one written by Prometheus (`json.MarshalIndent` with a tab).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::error::{Error, Result};

/// File name of the block descriptor.
pub const META_FILENAME: &str = "meta.json";

/// The only supported `version` of `meta.json`.
pub const META_VERSION_1: u32 = 1;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// Serde helpers storing a [`Ulid`] as its 26-character string.
mod ulid_str {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(u: &Ulid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&u.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
        let s = String::deserialize(d)?;
        Ulid::from_string(&s).map_err(|e| D::Error::custom(format!("invalid ulid {s:?}: {e}")))
    }
}

/// Serde helpers storing a list of [`Ulid`]s as strings.
mod ulid_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::SerializeSeq};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(v: &[Ulid], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for u in v {
            seq.serialize_element(&u.to_string())?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
        let v = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
        v.iter()
            .map(|s| {
                Ulid::from_string(s)
                    .map_err(|e| D::Error::custom(format!("invalid ulid {s:?}: {e}")))
            })
            .collect()
    }
}

/// Contents of `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// The block's ULID (also its directory name).
    #[serde(with = "ulid_str")]
    pub ulid: Ulid,
    /// Inclusive lower bound of sample timestamps (ms).
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Exclusive upper bound of sample timestamps (ms).
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    /// Counters over the block's content.
    #[serde(default)]
    pub stats: BlockStats,
    /// Compaction history.
    #[serde(default)]
    pub compaction: BlockMetaCompaction,
    /// Meta format version; always 1.
    pub version: u32,
    /// The Thanos section, present in blocks Thanos produced or uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
}

/// `stats` of `meta.json`; every counter is omitted when zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// Total samples over all chunks.
    #[serde(rename = "numSamples", default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    /// Samples in float chunks (Prometheus ≥ 3.6).
    #[serde(rename = "numFloatSamples", default, skip_serializing_if = "is_zero")]
    pub num_float_samples: u64,
    /// Samples in histogram chunks (Prometheus ≥ 3.6).
    #[serde(
        rename = "numHistogramSamples",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub num_histogram_samples: u64,
    /// Series with at least one chunk.
    #[serde(rename = "numSeries", default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    /// Chunks.
    #[serde(rename = "numChunks", default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// Tombstone intervals.
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

/// A direct input of a compaction (`compaction.parents[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDesc {
    /// ULID of the input block.
    #[serde(with = "ulid_str")]
    pub ulid: Ulid,
    /// Its `minTime`.
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Its `maxTime`.
    #[serde(rename = "maxTime")]
    pub max_time: i64,
}

/// `compaction` of `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMetaCompaction {
    /// 1 for blocks cut from the head or backfilled; max(parents)+1 after compaction.
    pub level: u32,
    /// Sorted ULIDs of all level-1 blocks that went into this one.
    #[serde(default, with = "ulid_vec", skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Ulid>,
    /// The block is empty and may be deleted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deletable: bool,
    /// Direct inputs of the compaction that produced this block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    /// A compaction involving this block failed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    /// Sorted compaction hints (`from-out-of-order`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

impl Default for BlockMetaCompaction {
    fn default() -> Self {
        Self {
            level: 1,
            sources: Vec::new(),
            deletable: false,
            parents: Vec::new(),
            failed: false,
            hints: Vec::new(),
        }
    }
}

/// The `thanos` section of `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    /// Section version; 0 (absent) means 1.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub version: u32,
    /// External labels of the producer.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Downsampling resolution.
    #[serde(default)]
    pub downsample: ThanosDownsample,
    /// Producer (`sidecar`, `receive`, `compactor`, ...).
    #[serde(default)]
    pub source: String,
    /// Deprecated: sorted names of the files in `chunks/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    /// All block files sorted by relative path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ThanosFile>,
    /// Rewrites applied to the block, kept verbatim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<serde_json::Value>,
    /// Sizes used by the store gateway to plan range reads.
    #[serde(default)]
    pub index_stats: IndexStats,
    /// Free-form extensions, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
    /// Upload time (RFC 3339), kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_time: Option<String>,
}

impl ThanosMeta {
    /// Rejects section versions other than 0/1, as Thanos does.
    pub fn check_version(&self) -> std::result::Result<(), String> {
        match self.version {
            0 | 1 => Ok(()),
            v => Err(format!("unsupported thanos meta version {v}")),
        }
    }
}

/// `thanos.downsample`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThanosDownsample {
    /// Resolution in ms: 0 raw, 300000 (5m), 3600000 (1h).
    pub resolution: i64,
}

/// One entry of `thanos.files`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThanosFile {
    /// Path relative to the block directory (`chunks/000001`, `index`, `meta.json`).
    pub rel_path: String,
    /// Size in bytes (omitted for `meta.json`).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub size_bytes: i64,
    /// Optional content hash, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<serde_json::Value>,
}

/// `thanos.index_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Largest series entry in the index, in bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub series_max_size: i64,
    /// Largest chunk record, in bytes.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub chunk_max_size: i64,
}

impl BlockMeta {
    /// A level-1 meta for a new block listing itself as its only source.
    pub fn new_level1(ulid: Ulid, min_time: i64, max_time: i64, stats: BlockStats) -> Self {
        Self {
            ulid,
            min_time,
            max_time,
            stats,
            compaction: BlockMetaCompaction {
                level: 1,
                sources: vec![ulid],
                ..BlockMetaCompaction::default()
            },
            version: META_VERSION_1,
            thanos: None,
        }
    }

    /// Parses `meta.json` content; `file` names it in errors. Rejects `version != 1`.
    pub fn from_json(data: &[u8], file: &str) -> Result<Self> {
        let meta: BlockMeta = serde_json::from_slice(data).map_err(|source| Error::Json {
            file: file.to_string(),
            source,
        })?;
        if meta.version != META_VERSION_1 {
            return Err(Error::invalid(
                file,
                format!("unsupported meta version {}", meta.version),
            ));
        }
        if let Some(t) = &meta.thanos {
            t.check_version().map_err(|r| Error::invalid(file, r))?;
        }
        Ok(meta)
    }

    /// Serialises exactly as Go's `json.MarshalIndent(meta, "", "\t")`: tab indentation,
    /// no trailing newline, `<`, `>`, `&`, U+2028 and U+2029 escaped.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serialising plain structs, strings, integers and JSON values into a Vec cannot fail.
        if self.serialize(&mut ser).is_err() {
            out.clear();
        }
        go_html_escape(out)
    }

    /// Reads `<dir>/meta.json`.
    pub fn read_from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILENAME);
        let data = std::fs::read(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        Self::from_json(&data, &path.display().to_string())
    }

    /// Writes `<dir>/meta.json` via `meta.json.tmp` + fsync + rename, as Prometheus does.
    pub fn write_to_dir(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILENAME);
        let tmp = dir.join(format!("{META_FILENAME}.tmp"));
        crate::fsutil::write_file_synced(&tmp, &self.to_json())?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(path.display().to_string(), e))
    }
}

/// Escapes what Go's encoder escapes but serde_json does not. The escaped characters never
/// occur outside string literals in JSON, so a byte-level replacement is exact.
fn go_html_escape(json: Vec<u8>) -> Vec<u8> {
    let needs = json
        .iter()
        .any(|&b| matches!(b, b'<' | b'>' | b'&') || b == 0xe2);
    if !needs {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xe2 if json.get(i + 1) == Some(&0x80) && matches!(json.get(i + 2), Some(0xa8)) => {
                out.extend_from_slice(b"\\u2028");
                i += 2;
            }
            0xe2 if json.get(i + 1) == Some(&0x80) && matches!(json.get(i + 2), Some(0xa9)) => {
                out.extend_from_slice(b"\\u2029");
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMTOOL_META: &str = "{\n\t\"ulid\": \"01M85W9AQF3AQZFQWMTQNDVKEN\",\n\t\"minTime\": 1699999200000,\n\t\"maxTime\": 1700006340001,\n\t\"stats\": {\n\t\t\"numSamples\": 360,\n\t\t\"numSeries\": 3,\n\t\t\"numChunks\": 3\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01M85W9AQF3AQZFQWMTQNDVKEN\"\n\t\t]\n\t},\n\t\"version\": 1\n}";

    #[test]
    fn promtool_meta_roundtrips_byte_for_byte() {
        let m = BlockMeta::from_json(PROMTOOL_META.as_bytes(), "meta.json").unwrap();
        assert_eq!(m.ulid.to_string(), "01M85W9AQF3AQZFQWMTQNDVKEN");
        assert_eq!(m.min_time, 1_699_999_200_000);
        assert_eq!(m.max_time, 1_700_006_340_001);
        assert_eq!(m.stats.num_samples, 360);
        assert_eq!(m.stats.num_series, 3);
        assert_eq!(m.compaction.level, 1);
        assert_eq!(m.compaction.sources, vec![m.ulid]);
        assert!(m.thanos.is_none());
        assert_eq!(String::from_utf8(m.to_json()).unwrap(), PROMTOOL_META);
    }

    #[test]
    fn thanos_section_roundtrips_with_exact_keys() {
        let text = r#"{
	"ulid": "01HQ3Y3P7V1T8YQ2S5J5C3M4ZK",
	"minTime": 0,
	"maxTime": 7200000,
	"stats": {
		"numSamples": 10,
		"numFloatSamples": 10,
		"numSeries": 1,
		"numChunks": 1
	},
	"compaction": {
		"level": 2,
		"sources": [
			"01HQ3Y3P7V1T8YQ2S5J5C3M4Z0",
			"01HQ3Y3P7V1T8YQ2S5J5C3M4Z1"
		],
		"parents": [
			{
				"ulid": "01HQ3Y3P7V1T8YQ2S5J5C3M4Z0",
				"minTime": 0,
				"maxTime": 3600000
			}
		]
	},
	"version": 1,
	"thanos": {
		"labels": {
			"cluster": "a\u0026b",
			"tenant_id": "default-tenant"
		},
		"downsample": {
			"resolution": 300000
		},
		"source": "receive",
		"segment_files": [
			"000001"
		],
		"files": [
			{
				"rel_path": "chunks/000001",
				"size_bytes": 1024
			},
			{
				"rel_path": "meta.json"
			}
		],
		"index_stats": {
			"series_max_size": 64
		}
	}
}"#;
        let m = BlockMeta::from_json(text.as_bytes(), "meta.json").unwrap();
        let t = m.thanos.as_ref().unwrap();
        assert_eq!(t.labels["cluster"], "a&b");
        assert_eq!(t.downsample.resolution, 300_000);
        assert_eq!(t.source, "receive");
        assert_eq!(t.files[0].size_bytes, 1024);
        assert_eq!(t.index_stats.series_max_size, 64);
        assert_eq!(m.compaction.parents[0].max_time, 3_600_000);
        assert_eq!(m.stats.num_float_samples, 10);
        assert_eq!(String::from_utf8(m.to_json()).unwrap(), text);
    }

    #[test]
    fn rejects_bad_version_and_bad_json() {
        let bad = PROMTOOL_META.replace("\"version\": 1", "\"version\": 2");
        let err = BlockMeta::from_json(bad.as_bytes(), "x/meta.json").unwrap_err();
        assert!(err.to_string().contains("x/meta.json"), "{err}");
        assert!(matches!(err, Error::Invalid { .. }));
        let err = BlockMeta::from_json(&PROMTOOL_META.as_bytes()[..40], "m").unwrap_err();
        assert!(matches!(err, Error::Json { .. }));
        let bad_ulid = PROMTOOL_META.replace("01M85W9AQF3AQZFQWMTQNDVKEN", "nope");
        assert!(matches!(
            BlockMeta::from_json(bad_ulid.as_bytes(), "m"),
            Err(Error::Json { .. })
        ));
        let thanos_v2 = PROMTOOL_META.replace(
            "\"version\": 1\n}",
            "\"version\": 1,\"thanos\":{\"version\":2}}",
        );
        assert!(matches!(
            BlockMeta::from_json(thanos_v2.as_bytes(), "m"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn go_escaping() {
        let out = go_html_escape("\"<a>&\u{2028}\u{2029}é\"".as_bytes().to_vec());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u003ca\\u003e\\u0026\\u2028\\u2029é\""
        );
    }
}
