//! Golden bytes computed by hand from the field tables in `docs/storeapi.md`
//! and `docs/remote-write.md`. Each key byte is `field_number << 3 | wire_type`
//! with wire types 0 = varint, 1 = 64-bit, 2 = length-delimited. proto3
//! omits scalar fields holding their default value; prost writes fields in
//! field-number order, which is what these fixtures assume.

use bytes::Bytes;
use prost::Message;
use thanos_proto::io::prometheus::write::v2 as rw2;
use thanos_proto::prometheus;
use thanos_proto::thanos::info::{ExemplarsInfo, InfoResponse, StoreInfo, TsdbInfo};
use thanos_proto::thanos::{
    Aggr, AggrChunk, Chunk, Label, LabelMatcher, SeriesRequest, ZLabelSet, chunk, label_matcher,
};

/// Asserts that `msg` encodes to exactly `golden` and that `golden` decodes
/// back to `msg`.
fn check<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, golden: &[u8]) {
    let encoded = msg.encode_to_vec();
    assert_eq!(
        encoded, golden,
        "encoding differs from golden bytes\n got: {encoded:02x?}\nwant: {golden:02x?}"
    );
    assert_eq!(msg.encoded_len(), golden.len());
    let decoded = M::decode(golden).expect("golden bytes decode");
    assert_eq!(&decoded, msg);
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn thanos_label() {
    let golden = [
        0x0a, 0x03, b'j', b'o', b'b', // field 1 (name), wire 2: 1<<3|2 = 0x0a, len 3
        0x12, 0x03, b'a', b'p', b'i', // field 2 (value), wire 2: 2<<3|2 = 0x12, len 3
    ];
    check(&label("job", "api"), &golden);
}

#[test]
fn thanos_label_matcher_with_enum() {
    let m = LabelMatcher {
        r#type: label_matcher::Type::Re as i32,
        name: "job".into(),
        value: "a.*".into(),
    };
    let golden = [
        0x08, 0x02, // field 1 (type), wire 0: 1<<3|0 = 0x08; RE = 2
        0x12, 0x03, b'j', b'o', b'b', // field 2 (name): 0x12, len 3
        0x1a, 0x03, b'a', b'.', b'*', // field 3 (value): 3<<3|2 = 0x1a, len 3
    ];
    check(&m, &golden);

    // EQ is the enum default (0) and therefore not written at all.
    let eq = LabelMatcher {
        r#type: label_matcher::Type::Eq as i32,
        name: "a".into(),
        value: "b".into(),
    };
    check(&eq, &[0x12, 0x01, b'a', 0x1a, 0x01, b'b']);
}

#[test]
fn thanos_series_request() {
    let req = SeriesRequest {
        min_time: -1,
        max_time: 1_700_000_000_000,
        matchers: vec![LabelMatcher {
            r#type: label_matcher::Type::Eq as i32,
            name: "__name__".into(),
            value: "up".into(),
        }],
        aggregates: vec![Aggr::Count as i32, Aggr::Sum as i32],
        skip_chunks: true,
        without_replica_labels: vec!["replica".into()],
        ..Default::default()
    };
    #[rustfmt::skip]
    let golden = [
        // field 1 (min_time), wire 0: 0x08. -1 as int64 is 2^64-1: nine
        // 0xff groups of 7 bits plus a final 0x01 (the 64th bit).
        0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        // field 2 (max_time), wire 0: 2<<3 = 0x10. 1_700_000_000_000 =
        // 0x31<<35 | 0x3c<<28 | 0x7f<<21 | 0x15<<14 | 0x50<<7 | 0x00, written
        // low group first with the continuation bit 0x80 on all but the last.
        0x10, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31,
        // field 3 (matchers), wire 2: 3<<3|2 = 0x1a, len 14 = 0x0e.
        // Inner matcher: type EQ omitted; name 0x12 len 8; value 0x1a len 2.
        0x1a, 0x0e,
        0x12, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_',
        0x1a, 0x02, b'u', b'p',
        // field 5 (aggregates), packed repeated enum, wire 2: 5<<3|2 = 0x2a,
        // len 2, COUNT = 1, SUM = 2.
        0x2a, 0x02, 0x01, 0x02,
        // field 8 (skip_chunks), wire 0: 8<<3 = 0x40, true = 1.
        0x40, 0x01,
        // field 14 (without_replica_labels), wire 2: 14<<3|2 = 0x72, len 7.
        0x72, 0x07, b'r', b'e', b'p', b'l', b'i', b'c', b'a',
    ];
    check(&req, &golden);
}

#[test]
fn thanos_aggr_chunk_and_chunk() {
    let aggr = AggrChunk {
        min_time: 10,
        max_time: 20,
        raw: Some(Chunk {
            r#type: chunk::Encoding::Xor as i32,
            data: Bytes::from_static(&[0x00, 0x01, 0x02]),
            hash: 300,
        }),
        ..Default::default()
    };
    #[rustfmt::skip]
    let golden = [
        0x08, 0x0a, // field 1 (min_time) = 10
        0x10, 0x14, // field 2 (max_time) = 20
        // field 3 (raw), wire 2: 3<<3|2 = 0x1a, len 8:
        0x1a, 0x08,
        // Chunk: type XOR = 0 omitted; field 2 (data) 0x12 len 3.
        0x12, 0x03, 0x00, 0x01, 0x02,
        // field 3 (hash), wire 0: 3<<3 = 0x18; 300 = 0b10_0101100 ->
        // 0x2c|0x80 = 0xac, then 0x02.
        0x18, 0xac, 0x02,
    ];
    check(&aggr, &golden);

    let float_hist = Chunk {
        r#type: chunk::Encoding::FloatHistogram as i32,
        data: Bytes::from_static(&[0xab]),
        hash: 0,
    };
    // field 1 (type) 0x08 = FLOAT_HISTOGRAM (2); field 2 (data) 0x12 len 1;
    // hash 0 omitted.
    check(&float_hist, &[0x08, 0x02, 0x12, 0x01, 0xab]);
}

#[test]
fn prometheus_write_request() {
    let req = prometheus::WriteRequest {
        timeseries: vec![prometheus::TimeSeries {
            labels: vec![prometheus::Label {
                name: "__name__".into(),
                value: "up".into(),
            }],
            samples: vec![prometheus::Sample {
                value: 1.5,
                timestamp: -1000,
            }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    #[rustfmt::skip]
    let golden = [
        // WriteRequest field 1 (timeseries), wire 2: 0x0a, len 38 = 0x26.
        0x0a, 0x26,
        // TimeSeries field 1 (labels): 0x0a, len 14 = 2 + 8 + 2 + 2.
        0x0a, 0x0e,
        0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_',
        0x12, 0x02, b'u', b'p',
        // TimeSeries field 2 (samples): 0x12, len 20 = 9 + 11.
        0x12, 0x14,
        // Sample field 1 (value, double), wire 1: 1<<3|1 = 0x09. 1.5 =
        // 0x3ff8_0000_0000_0000 (sign 0, exponent 0x3ff, mantissa 0.5),
        // little endian.
        0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,
        // Sample field 2 (timestamp), wire 0: 0x10. -1000 = 2^64 - 1000 =
        // 0xffff_ffff_ffff_fc18: low 7 bits 0x18 (|0x80 = 0x98), next 7 bits
        // 0x78 (|0x80 = 0xf8), then all-ones groups, last group 0x01.
        0x10, 0x98, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    check(&req, &golden);
}

#[test]
fn thanos_info_response() {
    let tenant = ZLabelSet {
        labels: vec![label("tenant_id", "t1")],
    };
    let resp = InfoResponse {
        label_sets: vec![tenant.clone()],
        component_type: "receive".into(),
        store: Some(StoreInfo {
            min_time: 1,
            max_time: i64::MAX,
            supports_sharding: true,
            supports_without_replica_labels: true,
            tsdb_infos: vec![TsdbInfo {
                labels: Some(tenant),
                min_time: 1,
                max_time: 2,
            }],
            supports_projections: false,
        }),
        exemplars: Some(ExemplarsInfo::default()),
        ..Default::default()
    };
    #[rustfmt::skip]
    let golden = [
        // field 1 (label_sets), wire 2: 0x0a, len 17 = 0x11.
        0x0a, 0x11,
        //   ZLabelSet field 1 (labels): 0x0a, len 15 = 2 + 9 + 2 + 2.
        0x0a, 0x0f,
        0x0a, 0x09, b't', b'e', b'n', b'a', b'n', b't', b'_', b'i', b'd',
        0x12, 0x02, b't', b'1',
        // field 2 (ComponentType), wire 2: 0x12, len 7.
        0x12, 0x07, b'r', b'e', b'c', b'e', b'i', b'v', b'e',
        // field 3 (store), wire 2: 0x1a, len 41 = 0x29 = 2 + 10 + 2 + 2 + 25.
        0x1a, 0x29,
        //   field 1 (min_time) = 1
        0x08, 0x01,
        //   field 2 (max_time) = 2^63-1: 63 one bits = eight 0xff groups and
        //   a final 0x7f.
        0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        //   field 3 (supports_sharding) = true
        0x18, 0x01,
        //   field 5 (supports_without_replica_labels): 5<<3 = 0x28, true.
        0x28, 0x01,
        //   field 6 (tsdb_infos), wire 2: 6<<3|2 = 0x32, len 23 = 19 + 2 + 2.
        0x32, 0x17,
        //     TSDBInfo field 1 (labels): the same 17-byte ZLabelSet.
        0x0a, 0x11,
        0x0a, 0x0f,
        0x0a, 0x09, b't', b'e', b'n', b'a', b'n', b't', b'_', b'i', b'd',
        0x12, 0x02, b't', b'1',
        //     field 2 (min_time) = 1, field 3 (max_time) = 2
        0x10, 0x01, 0x18, 0x02,
        // field 7 (exemplars), wire 2: 7<<3|2 = 0x3a. Present but empty:
        // length 0 (presence alone means "Exemplars API served").
        0x3a, 0x00,
    ];
    check(&resp, &golden);
}

#[test]
fn rw2_request_with_symbols_and_label_refs() {
    let req = rw2::Request {
        symbols: vec![
            String::new(),
            "__name__".into(),
            "up".into(),
            "job".into(),
            "node".into(),
        ],
        timeseries: vec![rw2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![rw2::Sample {
                value: 1.0,
                timestamp: 5,
                start_timestamp: 0,
            }],
            metadata: Some(rw2::Metadata {
                r#type: rw2::metadata::MetricType::Gauge as i32,
                help_ref: 0,
                unit_ref: 0,
            }),
            ..Default::default()
        }],
    };
    #[rustfmt::skip]
    let golden = [
        // field 4 (symbols), wire 2: 4<<3|2 = 0x22, one entry per symbol.
        // Repeated strings are never packed, so "" still takes 0x22 0x00.
        0x22, 0x00,
        0x22, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_',
        0x22, 0x02, b'u', b'p',
        0x22, 0x03, b'j', b'o', b'b',
        0x22, 0x04, b'n', b'o', b'd', b'e',
        // field 5 (timeseries), wire 2: 5<<3|2 = 0x2a, len 23 = 6 + 13 + 4.
        0x2a, 0x17,
        //   field 1 (labels_refs), packed uint32: 0x0a, len 4, refs 1..4
        //   (__name__="up", job="node").
        0x0a, 0x04, 0x01, 0x02, 0x03, 0x04,
        //   field 2 (samples): 0x12, len 11.
        0x12, 0x0b,
        //     value 1.0 = 0x3ff0_0000_0000_0000, little endian, key 0x09;
        //     timestamp 5 key 0x10; start_timestamp 0 omitted.
        0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,
        0x10, 0x05,
        //   field 5 (metadata): 0x2a, len 2; type GAUGE = 2 under key 0x08.
        0x2a, 0x02, 0x08, 0x02,
    ];
    check(&req, &golden);

    // Fields 1..3 are reserved in RW 2.0, so the same bytes read as a RW 1.0
    // WriteRequest carry no series (unknown fields are skipped).
    let as_v1 = prometheus::WriteRequest::decode(&golden[..]).expect("decodes as v1");
    assert!(as_v1.timeseries.is_empty());
    assert!(as_v1.metadata.is_empty());
}

#[test]
fn thanos_tsdb_statistics_map_entry() {
    use thanos_proto::thanos::{HeadStatistics, TsdbStatistics, TsdbStatisticsEntry};
    let stats = TsdbStatistics {
        statistics: [(
            "t".to_string(),
            TsdbStatisticsEntry {
                head_statistics: Some(HeadStatistics {
                    num_series: 1,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )]
        .into_iter()
        .collect(),
    };
    #[rustfmt::skip]
    let golden = [
        // field 1 (statistics), a map: each entry is an embedded message
        // {1: key, 2: value} under key 0x0a; entry len 9 = 3 + 6.
        0x0a, 0x09,
        //   entry field 1 (key "t"): 0x0a, len 1.
        0x0a, 0x01, b't',
        //   entry field 2 (value TSDBStatisticsEntry): 0x12, len 4.
        0x12, 0x04,
        //     field 1 (head_statistics): 0x0a, len 2; num_series = 1 (0x08 0x01).
        0x0a, 0x02, 0x08, 0x01,
    ];
    check(&stats, &golden);
}
