//! Encode -> decode round trips for every top-level message used in an RPC or
//! an HTTP body, plus cross-package compatibility checks and property tests.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use prost_types::{Any, Duration};
use thanos_proto::hintspb;
use thanos_proto::io::prometheus::write::v2 as rw2;
use thanos_proto::prometheus;
use thanos_proto::prometheus_copy;
use thanos_proto::thanos::{self, info};

/// Encodes, checks the announced length, decodes and compares; returns the
/// encoded bytes.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M) -> Vec<u8> {
    let encoded = msg.encode_to_vec();
    assert_eq!(encoded.len(), msg.encoded_len());
    let decoded = M::decode(encoded.as_slice()).expect("decode");
    assert_eq!(&decoded, msg);
    encoded
}

fn label(name: &str, value: &str) -> thanos::Label {
    thanos::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn matcher(t: thanos::label_matcher::Type, name: &str, value: &str) -> thanos::LabelMatcher {
    thanos::LabelMatcher {
        r#type: t as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn pack_any<M: Message>(type_name: &str, msg: &M) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: msg.encode_to_vec(),
    }
}

fn chunk(enc: thanos::chunk::Encoding, data: &'static [u8]) -> thanos::Chunk {
    thanos::Chunk {
        r#type: enc as i32,
        data: Bytes::from_static(data),
        hash: 0xdead_beef,
    }
}

fn series() -> thanos::Series {
    use thanos::chunk::Encoding;
    thanos::Series {
        labels: vec![label("__name__", "up"), label("job", "node")],
        chunks: vec![
            thanos::AggrChunk {
                min_time: 0,
                max_time: 119_999,
                raw: Some(chunk(Encoding::Xor, b"\x00\x01raw")),
                ..Default::default()
            },
            thanos::AggrChunk {
                min_time: 120_000,
                max_time: 239_999,
                raw: None,
                count: Some(chunk(Encoding::Xor, b"count")),
                sum: Some(chunk(Encoding::FloatHistogram, b"sum")),
                min: Some(chunk(Encoding::Xor, b"min")),
                max: Some(chunk(Encoding::Xor, b"max")),
                counter: Some(chunk(Encoding::Histogram, b"counter")),
            },
        ],
    }
}

fn copy_series() -> prometheus_copy::TimeSeries {
    prometheus_copy::TimeSeries {
        labels: vec![
            label("__name__", "http_requests_total"),
            label("code", "200"),
        ],
        samples: vec![
            prometheus_copy::Sample {
                value: 1.0,
                timestamp: 1,
            },
            prometheus_copy::Sample {
                value: -2.5,
                timestamp: 2,
            },
        ],
        exemplars: vec![prometheus_copy::Exemplar {
            labels: vec![label("trace_id", "abc")],
            value: 0.5,
            timestamp: 3,
        }],
        histograms: vec![prometheus_copy::Histogram {
            count: Some(prometheus_copy::histogram::Count::CountInt(10)),
            sum: 12.5,
            schema: -4,
            zero_threshold: 1e-128,
            zero_count: Some(prometheus_copy::histogram::ZeroCount::ZeroCountInt(1)),
            negative_spans: vec![prometheus_copy::BucketSpan {
                offset: -3,
                length: 2,
            }],
            negative_deltas: vec![1, -1],
            positive_spans: vec![prometheus_copy::BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_deltas: vec![2, 0, -1],
            reset_hint: prometheus_copy::histogram::ResetHint::No as i32,
            timestamp: 4,
            ..Default::default()
        }],
    }
}

#[test]
fn store_api_messages() {
    use thanos::label_matcher::Type;
    let series_hints = hintspb::SeriesRequestHints {
        block_matchers: vec![matcher(
            Type::Eq,
            "__block_id",
            "01H00000000000000000000000",
        )],
        enable_query_stats: true,
    };
    let req = thanos::SeriesRequest {
        min_time: 1,
        max_time: 2,
        matchers: vec![matcher(Type::Re, "job", "n.*"), matcher(Type::Nre, "x", "")],
        max_resolution_window: 300_000,
        aggregates: vec![thanos::Aggr::Count as i32, thanos::Aggr::Counter as i32],
        partial_response_disabled: true,
        partial_response_strategy: thanos::PartialResponseStrategy::Abort as i32,
        skip_chunks: false,
        hints: Some(pack_any("hintspb.SeriesRequestHints", &series_hints)),
        step: 15_000,
        range: 60_000,
        query_hints: Some(thanos::QueryHints {
            step_millis: 15_000,
            func: Some(thanos::Func {
                name: "rate".into(),
            }),
            grouping: Some(thanos::Grouping {
                by: true,
                labels: vec!["job".into()],
            }),
            range: Some(thanos::Range { millis: 60_000 }),
            projection_labels: vec!["job".into()],
            projection_include: true,
            series_hash_label_name: "__cf_series_hash__".into(),
        }),
        shard_info: Some(thanos::ShardInfo {
            shard_index: 1,
            total_shards: 4,
            by: true,
            labels: vec!["job".into()],
        }),
        without_replica_labels: vec!["replica".into()],
        limit: 100,
        response_batch_size: 64,
    };
    round_trip(&req);
    let decoded_hints =
        hintspb::SeriesRequestHints::decode(req.hints.as_ref().map_or(&[][..], |a| &a.value[..]))
            .expect("hints decode");
    assert_eq!(decoded_hints, series_hints);

    use thanos::series_response::Result as R;
    let response_hints = hintspb::SeriesResponseHints {
        queried_blocks: vec![hintspb::Block {
            id: "01H00000000000000000000000".into(),
        }],
        query_stats: Some(hintspb::QueryStats {
            blocks_queried: 1,
            chunks_fetched: 7,
            data_downloaded_size_sum: 1 << 20,
            get_all_duration: Some(Duration {
                seconds: 1,
                nanos: 500,
            }),
            merge_duration: Some(Duration::default()),
            ..Default::default()
        }),
    };
    round_trip(&response_hints);
    for result in [
        R::Series(series()),
        R::Warning("store down".into()),
        R::Hints(pack_any("hintspb.SeriesResponseHints", &response_hints)),
        R::Batch(thanos::SeriesBatch {
            series: vec![series(), series()],
        }),
    ] {
        round_trip(&thanos::SeriesResponse {
            result: Some(result),
        });
    }

    round_trip(&thanos::LabelNamesRequest {
        partial_response_disabled: false,
        partial_response_strategy: thanos::PartialResponseStrategy::Warn as i32,
        start: -5,
        end: 5,
        hints: Some(pack_any(
            "hintspb.LabelNamesRequestHints",
            &hintspb::LabelNamesRequestHints {
                block_matchers: vec![matcher(Type::Neq, "a", "b")],
            },
        )),
        matchers: vec![matcher(Type::Eq, "job", "node")],
        without_replica_labels: vec!["replica".into()],
        limit: 10,
    });
    round_trip(&thanos::LabelNamesResponse {
        names: vec!["__name__".into(), "job".into()],
        warnings: vec!["partial".into()],
        hints: Some(pack_any(
            "hintspb.LabelNamesResponseHints",
            &hintspb::LabelNamesResponseHints {
                queried_blocks: vec![hintspb::Block { id: "b".into() }],
            },
        )),
    });
    round_trip(&thanos::LabelValuesRequest {
        label: "job".into(),
        partial_response_disabled: true,
        partial_response_strategy: thanos::PartialResponseStrategy::Abort as i32,
        start: 1,
        end: 2,
        hints: Some(pack_any(
            "hintspb.LabelValuesRequestHints",
            &hintspb::LabelValuesRequestHints {
                block_matchers: vec![],
            },
        )),
        matchers: vec![matcher(Type::Re, "__name__", ".+")],
        without_replica_labels: vec!["replica".into()],
        limit: 3,
    });
    round_trip(&thanos::LabelValuesResponse {
        values: vec!["node".into()],
        warnings: vec![],
        hints: Some(pack_any(
            "hintspb.LabelValuesResponseHints",
            &hintspb::LabelValuesResponseHints {
                queried_blocks: vec![hintspb::Block { id: "c".into() }],
            },
        )),
    });
}

#[test]
fn writeable_store_messages() {
    let req = thanos::WriteRequest {
        timeseries: vec![copy_series()],
        tenant: "legacy".into(),
        replica: 2,
        timeseries_tenant_data: vec![
            thanos::TimeSeriesTenantTuple {
                timeseries: vec![copy_series()],
                tenant: "a".into(),
            },
            thanos::TimeSeriesTenantTuple {
                timeseries: vec![],
                tenant: "b".into(),
            },
        ],
    };
    round_trip(&req);
    // An empty response is zero bytes on the wire.
    assert!(round_trip(&thanos::WriteResponse {}).is_empty());
}

#[test]
fn info_messages() {
    assert!(round_trip(&info::InfoRequest {}).is_empty());
    let labels = thanos::ZLabelSet {
        labels: vec![label("replica", "a"), label("tenant_id", "t")],
    };
    round_trip(&info::InfoResponse {
        label_sets: vec![labels.clone(), thanos::ZLabelSet::default()],
        component_type: "query".into(),
        store: Some(info::StoreInfo {
            min_time: i64::MIN,
            max_time: i64::MAX,
            supports_sharding: true,
            supports_without_replica_labels: true,
            tsdb_infos: vec![info::TsdbInfo {
                labels: Some(labels),
                min_time: 0,
                max_time: 7_200_000,
            }],
            supports_projections: true,
        }),
        rules: Some(info::RulesInfo {}),
        metric_metadata: Some(info::MetricMetadataInfo {}),
        targets: Some(info::TargetsInfo {}),
        exemplars: Some(info::ExemplarsInfo {
            min_time: 1,
            max_time: 2,
        }),
        query: Some(info::QueryApiInfo {}),
        status: Some(info::StatusInfo {}),
    });
}

#[test]
fn labelpb_symbol_table() {
    round_trip(&thanos::SymbolTable {
        offsets: vec![3, 5],
        table: Bytes::from_static(b"jobup"),
    });
    round_trip(&thanos::SymTableLabel {
        name_ref: 0,
        value_ref: 1,
    });
    round_trip(&thanos::LabelSet {
        labels: vec![label("a", "b")],
    });
}

fn prom_series() -> prometheus::TimeSeries {
    prometheus::TimeSeries {
        labels: vec![prometheus::Label {
            name: "__name__".into(),
            value: "x".into(),
        }],
        samples: vec![prometheus::Sample {
            value: 3.25,
            timestamp: 1_700_000_000_000,
        }],
        exemplars: vec![prometheus::Exemplar {
            labels: vec![],
            value: 1.0,
            timestamp: 2,
        }],
        histograms: vec![prometheus::Histogram {
            count: Some(prometheus::histogram::Count::CountFloat(3.5)),
            sum: 2.0,
            schema: -53,
            zero_threshold: 0.0,
            zero_count: Some(prometheus::histogram::ZeroCount::ZeroCountFloat(0.5)),
            positive_spans: vec![prometheus::BucketSpan {
                offset: 0,
                length: 2,
            }],
            positive_counts: vec![1.0, 2.0],
            negative_counts: vec![],
            reset_hint: prometheus::histogram::ResetHint::Gauge as i32,
            timestamp: 9,
            custom_values: vec![0.1, 1.0],
            ..Default::default()
        }],
    }
}

#[test]
fn prometheus_remote_write_and_read() {
    let write = prometheus::WriteRequest {
        timeseries: vec![prom_series()],
        metadata: vec![prometheus::MetricMetadata {
            r#type: prometheus::metric_metadata::MetricType::Counter as i32,
            metric_family_name: "x".into(),
            help: "help text".into(),
            unit: "seconds".into(),
        }],
    };
    let bytes = round_trip(&write);

    // Thanos' prometheus_copy has identical field numbers: the same bytes must
    // decode to the same content and re-encode identically.
    let copy = prometheus_copy::WriteRequest::decode(bytes.as_slice()).expect("copy decodes");
    assert_eq!(copy.timeseries[0].labels[0].name, "__name__");
    assert_eq!(copy.timeseries[0].samples[0].timestamp, 1_700_000_000_000);
    assert_eq!(
        copy.timeseries[0].histograms[0].custom_values,
        vec![0.1, 1.0]
    );
    assert_eq!(copy.metadata[0].help, "help text");
    assert_eq!(copy.encode_to_vec(), bytes);

    let read = prometheus::ReadRequest {
        queries: vec![prometheus::Query {
            start_timestamp_ms: 1,
            end_timestamp_ms: 2,
            matchers: vec![prometheus::LabelMatcher {
                r#type: prometheus::label_matcher::Type::Re as i32,
                name: "job".into(),
                value: ".*".into(),
            }],
            hints: Some(prometheus::ReadHints {
                step_ms: 1,
                func: "rate".into(),
                start_ms: 1,
                end_ms: 2,
                grouping: vec!["job".into()],
                by: true,
                range_ms: 300_000,
            }),
        }],
        accepted_response_types: vec![
            prometheus::read_request::ResponseType::StreamedXorChunks as i32,
            prometheus::read_request::ResponseType::Samples as i32,
        ],
    };
    let read_bytes = round_trip(&read);
    let read_copy = prometheus_copy::ReadRequest::decode(read_bytes.as_slice()).expect("copy");
    assert_eq!(read_copy.encode_to_vec(), read_bytes);

    round_trip(&prometheus::ReadResponse {
        results: vec![prometheus::QueryResult {
            timeseries: vec![prom_series()],
        }],
    });
    round_trip(&prometheus::ChunkedReadResponse {
        chunked_series: vec![prometheus::ChunkedSeries {
            labels: vec![prometheus::Label {
                name: "a".into(),
                value: "b".into(),
            }],
            chunks: vec![prometheus::Chunk {
                min_time_ms: 0,
                max_time_ms: 10,
                r#type: prometheus::chunk::Encoding::FloatHistogramSt as i32,
                data: Bytes::from_static(b"\x01\x02"),
            }],
        }],
        query_index: 3,
    });
}

#[test]
fn remote_write_v2_and_thanos_copy() {
    let req = rw2::Request {
        symbols: vec!["".into(), "__name__".into(), "x".into(), "help".into()],
        timeseries: vec![rw2::TimeSeries {
            labels_refs: vec![1, 2],
            samples: vec![rw2::Sample {
                value: 1.0,
                timestamp: 10,
                start_timestamp: -1,
            }],
            histograms: vec![rw2::Histogram {
                count: Some(rw2::histogram::Count::CountInt(1)),
                schema: 3,
                reset_hint: rw2::histogram::ResetHint::Yes as i32,
                start_timestamp: 5,
                ..Default::default()
            }],
            exemplars: vec![rw2::Exemplar {
                labels_refs: vec![1, 2],
                value: 2.0,
                timestamp: 10,
            }],
            metadata: Some(rw2::Metadata {
                r#type: rw2::metadata::MetricType::Counter as i32,
                help_ref: 3,
                unit_ref: 0,
            }),
        }],
    };
    let bytes = round_trip(&req);
    let copy = thanos::io::prometheus::write::v2::Request::decode(bytes.as_slice()).expect("copy");
    assert_eq!(copy.symbols, req.symbols);
    assert_eq!(copy.timeseries[0].histograms[0].start_timestamp, 5);
    assert_eq!(copy.encode_to_vec(), bytes);
}

#[test]
fn stale_marker_nan_bits_survive() {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let req = prometheus::WriteRequest {
        timeseries: vec![prometheus::TimeSeries {
            samples: vec![prometheus::Sample {
                value: stale,
                timestamp: 1,
            }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let back = prometheus::WriteRequest::decode(req.encode_to_vec().as_slice()).expect("decode");
    assert_eq!(
        back.timeseries[0].samples[0].value.to_bits(),
        0x7ff0_0000_0000_0002
    );
}

#[test]
fn negative_zero_sample_is_sent_as_default() {
    // Pins prost's proto3 behaviour: a double field equal to 0.0 (which
    // includes -0.0) is not written, so the receiver sees +0.0.
    let sample = prometheus::Sample {
        value: -0.0,
        timestamp: 0,
    };
    assert!(sample.encode_to_vec().is_empty());
}

fn arb_label() -> impl Strategy<Value = (String, String)> {
    ("[a-zA-Z_][a-zA-Z0-9_]{0,12}", "\\PC{0,16}")
}

fn arb_prom_series() -> impl Strategy<Value = prometheus::TimeSeries> {
    (
        prop::collection::vec(arb_label(), 0..6),
        prop::collection::vec((any::<f64>(), any::<i64>()), 0..8),
    )
        .prop_map(|(labels, samples)| prometheus::TimeSeries {
            labels: labels
                .into_iter()
                .map(|(name, value)| prometheus::Label { name, value })
                .collect(),
            samples: samples
                .into_iter()
                .map(|(value, timestamp)| prometheus::Sample { value, timestamp })
                .collect(),
            ..Default::default()
        })
}

fn arb_aggr_chunk() -> impl Strategy<Value = thanos::AggrChunk> {
    (
        any::<i64>(),
        any::<i64>(),
        0..3i32,
        prop::collection::vec(any::<u8>(), 0..64),
        any::<u64>(),
    )
        .prop_map(|(min_time, max_time, enc, data, hash)| thanos::AggrChunk {
            min_time,
            max_time,
            raw: Some(thanos::Chunk {
                r#type: enc,
                data: Bytes::from(data),
                hash,
            }),
            ..Default::default()
        })
}

fn arb_series() -> impl Strategy<Value = thanos::Series> {
    (
        prop::collection::vec(arb_label(), 0..6),
        prop::collection::vec(arb_aggr_chunk(), 0..4),
    )
        .prop_map(|(labels, chunks)| thanos::Series {
            labels: labels.into_iter().map(|(n, v)| label(&n, &v)).collect(),
            chunks,
        })
}

fn arb_series_response() -> impl Strategy<Value = thanos::SeriesResponse> {
    use thanos::series_response::Result as R;
    prop_oneof![
        arb_series().prop_map(R::Series),
        "\\PC{0,32}".prop_map(R::Warning),
        prop::collection::vec(arb_series(), 0..3)
            .prop_map(|series| R::Batch(thanos::SeriesBatch { series })),
    ]
    .prop_map(|result| thanos::SeriesResponse {
        result: Some(result),
    })
}

proptest! {
    /// Re-encoding what was decoded gives the same bytes, and labels and
    /// timestamps survive exactly (float values are compared bit-wise so
    /// NaNs are covered; -0.0 is the one exception, see below).
    #[test]
    fn write_request_round_trip(series in prop::collection::vec(arb_prom_series(), 0..5)) {
        let req = prometheus::WriteRequest { timeseries: series, metadata: vec![] };
        let bytes = req.encode_to_vec();
        let back = prometheus::WriteRequest::decode(bytes.as_slice()).expect("decode");
        prop_assert_eq!(back.encode_to_vec(), bytes);
        prop_assert_eq!(back.timeseries.len(), req.timeseries.len());
        for (a, b) in back.timeseries.iter().zip(&req.timeseries) {
            prop_assert_eq!(&a.labels, &b.labels);
            // proto3 omits a double equal to 0.0, and -0.0 == 0.0, so prost
            // sends -0.0 as "absent" and it comes back as +0.0.
            let bits = |s: &prometheus::TimeSeries| -> Vec<(u64, i64)> {
                s.samples
                    .iter()
                    .map(|x| (if x.value == 0.0 { 0 } else { x.value.to_bits() }, x.timestamp))
                    .collect()
            };
            prop_assert_eq!(bits(a), bits(b));
        }
    }

    #[test]
    fn series_response_round_trip(resp in arb_series_response()) {
        let bytes = resp.encode_to_vec();
        let back = thanos::SeriesResponse::decode(Bytes::from(bytes)).expect("decode");
        prop_assert_eq!(back, resp);
    }
}

#[test]
fn exemplars_status_metadata_messages() {
    let labels = thanos::ZLabelSet {
        labels: vec![label("__name__", "x"), label("tenant_id", "t")],
    };
    round_trip(&thanos::ExemplarsRequest {
        query: "x{job=\"a\"}".into(),
        start: 1,
        end: 2,
        partial_response_strategy: thanos::PartialResponseStrategy::Abort as i32,
    });
    use thanos::exemplars_response::Result as ER;
    for result in [
        ER::Data(thanos::ExemplarData {
            series_labels: Some(labels.clone()),
            exemplars: vec![thanos::Exemplar {
                labels: Some(thanos::ZLabelSet {
                    labels: vec![label("trace_id", "1")],
                }),
                value: 0.25,
                ts: 3,
            }],
        }),
        ER::Warning("partial".into()),
    ] {
        round_trip(&thanos::ExemplarsResponse {
            result: Some(result),
        });
    }

    round_trip(&thanos::TsdbStatisticsRequest {
        tenant: String::new(),
        limit: 10,
        partial_response_strategy: 0,
        matchers: vec![matcher(thanos::label_matcher::Type::Eq, "tenant_id", "t")],
    });
    let stat = |name: &str, value| thanos::Statistic {
        name: name.into(),
        value,
    };
    use thanos::tsdb_statistics_response::Result as SR;
    round_trip(&thanos::TsdbStatisticsResponse {
        result: Some(SR::Statistics(thanos::TsdbStatistics {
            statistics: [(
                "t".to_string(),
                thanos::TsdbStatisticsEntry {
                    head_statistics: Some(thanos::HeadStatistics {
                        num_series: 3,
                        num_label_pairs: 5,
                        chunk_count: 7,
                        min_time: -1,
                        max_time: 9,
                    }),
                    series_count_by_metric_name: vec![stat("x", 3)],
                    label_value_count_by_label_name: vec![stat("job", 2)],
                    memory_in_bytes_by_label_name: vec![stat("job", 40)],
                    series_count_by_label_value_pair: vec![stat("job=a", 1)],
                },
            )]
            .into_iter()
            .collect(),
        })),
    });

    round_trip(&thanos::MetricMetadataRequest {
        metric: "x".into(),
        limit: -1,
        partial_response_strategy: 1,
    });
    use thanos::metric_metadata_response::Result as MR;
    round_trip(&thanos::MetricMetadataResponse {
        result: Some(MR::Metadata(thanos::MetricMetadata {
            metadata: [(
                "x".to_string(),
                thanos::MetricMetadataEntry {
                    metas: vec![thanos::Meta {
                        r#type: "counter".into(),
                        help: "a counter".into(),
                        unit: "".into(),
                    }],
                },
            )]
            .into_iter()
            .collect(),
        })),
    });
}
