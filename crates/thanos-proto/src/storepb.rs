//! Conversions and StoreAPI label rules shared by every StoreAPI server and client.
//!
//! Mirrors the helpers of Thanos's `pkg/store/storepb` and `pkg/store/labelpb`: wire
//! matchers and labels to and from the model types, the external-label rules of
//! storeapi.md §5 and the shard selection of §6.

use thanos_model::{Labels, MatchType, Matcher, ModelError};

use crate::thanos::series_response::Result as Frame;
use crate::thanos::{Label, LabelMatcher, Series, SeriesResponse, ShardInfo, label_matcher};

/// The response stream of a `thanos.Store/Series` server implementation.
pub type SeriesStream = std::pin::Pin<
    Box<
        dyn tonic::codegen::tokio_stream::Stream<Item = Result<SeriesResponse, tonic::Status>>
            + Send,
    >,
>;

impl SeriesResponse {
    /// A frame carrying one series.
    pub fn series(series: Series) -> Self {
        Self {
            result: Some(Frame::Series(series)),
        }
    }

    /// A frame carrying a warning (a partial-response warning of a proxy).
    pub fn warning(text: String) -> Self {
        Self {
            result: Some(Frame::Warning(text)),
        }
    }
}

/// Chunk bytes above which a batch frame is sent even when it holds fewer series than the
/// client asked for (the receive cap of one series frame, storeapi.md §4.2).
const MAX_BATCH_CHUNK_BYTES: usize = 1 << 20;

/// Packs the series frames of a Series response into `batch` frames of at most
/// `response_batch_size` series, as a client asking for batches (field 16 of the
/// request) accepts; a size of 0 or 1 returns the frames unchanged.
///
/// Only series frames that are already available are packed together, so batching
/// never holds a series back waiting for the next one. Order is kept: a warning, hints
/// frame or error ends the batch before it, and a batch closes early once its chunks
/// exceed 1 MiB.
pub fn batch_series<S>(frames: S, response_batch_size: i64) -> SeriesStream
where
    S: futures::Stream<Item = Result<SeriesResponse, tonic::Status>> + Send + 'static,
{
    use futures::StreamExt as _;
    match usize::try_from(response_batch_size) {
        Ok(max) if max > 1 => Box::pin(
            frames
                .ready_chunks(max)
                .flat_map(move |ready| futures::stream::iter(pack_series(ready, max))),
        ),
        _ => Box::pin(frames),
    }
}

/// Bytes of raw chunk data in `chunks`.
pub fn chunk_bytes(chunks: &[crate::thanos::AggrChunk]) -> usize {
    chunks
        .iter()
        .filter_map(|c| c.raw.as_ref())
        .map(|r| r.data.len())
        .sum()
}

/// Packs consecutive series frames of `frames` into batch frames of at most `max` series
/// (a lone series stays a series frame).
fn pack_series(
    frames: Vec<Result<SeriesResponse, tonic::Status>>,
    max: usize,
) -> Vec<Result<SeriesResponse, tonic::Status>> {
    fn flush(batch: &mut Vec<Series>, out: &mut Vec<Result<SeriesResponse, tonic::Status>>) {
        let frame = match batch.len() {
            0 => return,
            1 => Frame::Series(batch.pop().expect("one series")),
            _ => Frame::Batch(crate::thanos::SeriesBatch {
                series: std::mem::take(batch),
            }),
        };
        out.push(Ok(SeriesResponse {
            result: Some(frame),
        }));
    }
    let mut out = Vec::new();
    let mut batch: Vec<Series> = Vec::new();
    let mut bytes = 0;
    for frame in frames {
        match frame {
            Ok(SeriesResponse {
                result: Some(Frame::Series(series)),
            }) => {
                let size = chunk_bytes(&series.chunks);
                if batch.len() == max || (!batch.is_empty() && bytes + size > MAX_BATCH_CHUNK_BYTES)
                {
                    flush(&mut batch, &mut out);
                    bytes = 0;
                }
                bytes += size;
                batch.push(series);
            }
            other => {
                flush(&mut batch, &mut out);
                bytes = 0;
                out.push(other);
            }
        }
    }
    flush(&mut batch, &mut out);
    out
}

/// A wire matcher that cannot become a model matcher.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// The matcher type is not one of `EQ`, `NEQ`, `RE`, `NRE`.
    #[error("unknown matcher type {kind} for label {name:?}")]
    UnknownType {
        /// The type number received.
        kind: i32,
        /// The matcher's label name.
        name: String,
    },
    /// The model rejected the matcher (e.g. an invalid regex).
    #[error(transparent)]
    Invalid(#[from] ModelError),
}

/// Converts StoreAPI matchers into model matchers.
pub fn matchers_from_proto(matchers: &[LabelMatcher]) -> Result<Vec<Matcher>, MatcherError> {
    matchers
        .iter()
        .map(|m| {
            let t = match label_matcher::Type::try_from(m.r#type) {
                Ok(label_matcher::Type::Eq) => MatchType::Equal,
                Ok(label_matcher::Type::Neq) => MatchType::NotEqual,
                Ok(label_matcher::Type::Re) => MatchType::RegexMatch,
                Ok(label_matcher::Type::Nre) => MatchType::RegexNoMatch,
                Err(_) => {
                    return Err(MatcherError::UnknownType {
                        kind: m.r#type,
                        name: m.name.clone(),
                    });
                }
            };
            Ok(Matcher::new(t, m.name.clone(), m.value.clone())?)
        })
        .collect()
}

/// Converts model matchers into StoreAPI matchers.
pub fn matchers_to_proto(matchers: &[Matcher]) -> Vec<LabelMatcher> {
    matchers
        .iter()
        .map(|m| LabelMatcher {
            r#type: match m.match_type() {
                MatchType::Equal => label_matcher::Type::Eq,
                MatchType::NotEqual => label_matcher::Type::Neq,
                MatchType::RegexMatch => label_matcher::Type::Re,
                MatchType::RegexNoMatch => label_matcher::Type::Nre,
            } as i32,
            name: m.name().to_owned(),
            value: m.value().to_owned(),
        })
        .collect()
}

/// Converts a label set into StoreAPI labels (already sorted).
pub fn labels_to_proto(labels: &Labels) -> Vec<Label> {
    labels.as_slice().to_vec()
}

/// Converts a label set into StoreAPI labels, moving the labels out when the set is not
/// shared.
pub fn labels_into_proto(labels: Labels) -> Vec<Label> {
    labels.into_vec()
}

/// Converts StoreAPI labels into a validated label set (sorted; duplicate or empty names
/// rejected).
pub fn labels_from_proto(labels: &[Label]) -> Result<Labels, ModelError> {
    Labels::new(labels.to_vec())
}

/// Splits off the matchers on external labels: `None` when one of them rejects the
/// external label set `ext`, otherwise the matchers left for the stored series.
pub fn strip_external(matchers: &[Matcher], ext: &Labels) -> Option<Vec<Matcher>> {
    let mut rest = Vec::with_capacity(matchers.len());
    for m in matchers {
        match ext.get(m.name()) {
            Some(v) if !m.matches(v) => return None,
            Some(_) => {}
            None => rest.push(m.clone()),
        }
    }
    Some(rest)
}

/// The labels a StoreAPI server returns: the stored labels with the external labels set
/// over them (external wins), then the replica labels in `without` removed.
pub fn finalize_labels(stored: &Labels, ext: &Labels, without: &[String]) -> Labels {
    if ext.is_empty() && without.is_empty() {
        return stored.clone();
    }
    let mut b = stored.builder();
    for l in ext {
        b.set(l.name.clone(), l.value.clone());
    }
    for w in without {
        b.del(w);
    }
    b.build()
}

/// Whether `labels` belongs to the requested shard (storeapi.md §6): xxhash64 over
/// `name 0xff value 0xff` of the selected labels (`by` the listed ones, or all but them),
/// modulo the shard count. No shard info, or zero shards, selects everything.
pub fn in_shard(labels: &Labels, shard: Option<&ShardInfo>) -> bool {
    let Some(s) = shard else { return true };
    if s.total_shards < 1 {
        return true;
    }
    let mut buf = Vec::new();
    for l in labels {
        if s.labels.iter().any(|n| *n == l.name) == s.by {
            buf.extend_from_slice(l.name.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(l.value.as_bytes());
            buf.push(0xff);
        }
    }
    let h = xxhash_rust::xxh64::xxh64(&buf, 0);
    h % (s.total_shards as u64) == s.shard_index as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_round_trip_and_bad_type_is_named() {
        let ms = vec![
            Matcher::equal("a", "1"),
            Matcher::new(MatchType::RegexNoMatch, "b", "x|y").unwrap(),
        ];
        assert_eq!(matchers_from_proto(&matchers_to_proto(&ms)).unwrap(), ms);
        let bad = LabelMatcher {
            r#type: 9,
            name: "job".into(),
            value: String::new(),
        };
        let err = matchers_from_proto(&[bad]).unwrap_err().to_string();
        assert!(err.contains("9") && err.contains("job"), "{err}");
    }

    #[test]
    fn labels_round_trip_and_validation() {
        let l = Labels::from_pairs([("a", "1"), ("b", "2")]);
        assert_eq!(labels_from_proto(&labels_to_proto(&l)).unwrap(), l);
        let dup = [
            Label {
                name: "a".into(),
                value: "1".into(),
            },
            Label {
                name: "a".into(),
                value: "2".into(),
            },
        ];
        assert!(labels_from_proto(&dup).is_err());
    }

    #[test]
    fn external_labels_override_and_replicas_go() {
        let stored = Labels::from_pairs([("__name__", "up"), ("site", "x"), ("replica", "1")]);
        let ext = Labels::from_pairs([("site", "eu")]);
        let got = finalize_labels(&stored, &ext, &["replica".to_owned()]);
        assert_eq!(
            got,
            Labels::from_pairs([("__name__", "up"), ("site", "eu")])
        );
        let ms = vec![
            Matcher::equal("site", "eu"),
            Matcher::equal("__name__", "up"),
        ];
        assert_eq!(strip_external(&ms, &ext).map(|r| r.len()), Some(1));
        assert!(strip_external(&[Matcher::equal("site", "us")], &ext).is_none());
    }

    #[test]
    fn shards_partition_series() {
        let shard = |i| ShardInfo {
            shard_index: i,
            total_shards: 3,
            by: true,
            labels: vec!["job".into()],
        };
        for job in ["a", "b", "c", "d"] {
            let l = Labels::from_pairs([("job", job), ("x", "1")]);
            assert_eq!((0..3).filter(|&i| in_shard(&l, Some(&shard(i)))).count(), 1);
        }
        assert!(in_shard(&Labels::empty(), None));
    }

    fn named(name: &str, chunk_bytes: usize) -> Series {
        Series {
            labels: vec![Label {
                name: "n".into(),
                value: name.into(),
            }],
            chunks: vec![crate::thanos::AggrChunk {
                raw: Some(crate::thanos::Chunk {
                    data: vec![0; chunk_bytes].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        }
    }

    /// The frames as text: `s:a` series, `b:a,b` batch, `w:text` warning, `e:msg` error.
    fn shapes(frames: &[Result<SeriesResponse, tonic::Status>]) -> Vec<String> {
        let name = |s: &Series| s.labels[0].value.clone();
        frames
            .iter()
            .map(|f| match f {
                Ok(SeriesResponse {
                    result: Some(Frame::Series(s)),
                }) => format!("s:{}", name(s)),
                Ok(SeriesResponse {
                    result: Some(Frame::Batch(b)),
                }) => format!(
                    "b:{}",
                    b.series.iter().map(name).collect::<Vec<_>>().join(",")
                ),
                Ok(SeriesResponse {
                    result: Some(Frame::Warning(w)),
                }) => format!("w:{w}"),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("e:{}", e.message()),
            })
            .collect()
    }

    fn collect(frames: Vec<Result<SeriesResponse, tonic::Status>>, size: i64) -> Vec<String> {
        use futures::StreamExt as _;
        let out: Vec<_> = futures::executor::block_on(
            batch_series(futures::stream::iter(frames), size).collect(),
        );
        shapes(&out)
    }

    #[test]
    fn series_are_packed_up_to_the_batch_size_in_order() {
        let frames = || (0..5).map(|i| Ok(SeriesResponse::series(named(&i.to_string(), 8))));
        assert_eq!(collect(frames().collect(), 2), ["b:0,1", "b:2,3", "s:4"]);
        assert_eq!(collect(frames().collect(), 64), ["b:0,1,2,3,4"]);
        // No batching asked for: the frames pass unchanged.
        for size in [0, 1, -3] {
            assert_eq!(
                collect(frames().collect(), size),
                ["s:0", "s:1", "s:2", "s:3", "s:4"]
            );
        }
    }

    #[test]
    fn warnings_and_errors_close_the_batch_before_them() {
        let frames = vec![
            Ok(SeriesResponse::series(named("a", 1))),
            Ok(SeriesResponse::series(named("b", 1))),
            Ok(SeriesResponse::warning("w1".into())),
            Ok(SeriesResponse::series(named("c", 1))),
            Err(tonic::Status::internal("boom")),
        ];
        assert_eq!(collect(frames, 64), ["b:a,b", "w:w1", "s:c", "e:boom"]);
    }

    #[test]
    fn a_batch_closes_once_its_chunks_pass_a_mebibyte() {
        let half = MAX_BATCH_CHUNK_BYTES / 2;
        let frames = vec![
            Ok(SeriesResponse::series(named("a", half))),
            Ok(SeriesResponse::series(named("b", half))),
            Ok(SeriesResponse::series(named("c", 1))),
            Ok(SeriesResponse::series(named(
                "d",
                2 * MAX_BATCH_CHUNK_BYTES,
            ))),
            Ok(SeriesResponse::series(named("e", 1))),
        ];
        assert_eq!(collect(frames, 64), ["b:a,b", "s:c", "s:d", "s:e"]);
    }

    #[test]
    fn only_ready_series_are_packed() {
        use futures::StreamExt as _;
        // A stream yielding Pending between its series: each is sent as soon as it is there.
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let mut stream = batch_series(rx, 64);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        tx.unbounded_send(Ok(SeriesResponse::series(named("a", 1))))
            .unwrap();
        let first = match stream.poll_next_unpin(&mut cx) {
            std::task::Poll::Ready(Some(f)) => f,
            other => panic!("the ready series was held back: {other:?}"),
        };
        assert_eq!(shapes(&[first]), ["s:a"]);
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        tx.unbounded_send(Ok(SeriesResponse::series(named("b", 1))))
            .unwrap();
        tx.unbounded_send(Ok(SeriesResponse::series(named("c", 1))))
            .unwrap();
        drop(tx);
        let rest: Vec<_> = futures::executor::block_on(stream.collect());
        assert_eq!(shapes(&rest), ["b:b,c"]);
    }
}
