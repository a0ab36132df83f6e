//! A real Prometheus (Debian's /usr/bin/prometheus) started on a data directory holding a
//! block we wrote loads it and answers queries over it with the written values.

use crate::common;

use common::*;
use thanos_model::Labels;
use thanos_tsdb::block::{BlockWriterOptions, ChunkData, write_block};
use thanos_tsdb::merge::encode_xor_chunks;

#[test]
fn prometheus_serves_queries_over_our_block() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    // Finite values only, so that every instant query has a comparable answer.
    let series: SeriesData = generate_series(11, 2, 3, 2)
        .into_iter()
        .map(|(l, s)| {
            let s = s.into_iter().filter(|x| x.v.is_finite()).collect();
            (l, s)
        })
        .collect();
    let input: Vec<(Labels, Vec<ChunkData>)> = series
        .iter()
        .map(|(l, s)| (l.clone(), encode_xor_chunks(s)))
        .collect();
    let meta = write_block(&data_dir, &input, BlockWriterOptions::default())
        .unwrap()
        .unwrap();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();

    let port = free_port();
    let _guard = start_prometheus(&config, &data_dir, port, &[]);
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "prometheus_tsdb_blocks_loaded 1"),
        "block not loaded"
    );

    let mut checked = 0;
    for (labels, samples) in &series {
        let selector = labels.to_string().replace(", ", ",");
        for s in samples.iter().step_by(5) {
            let path = format!(
                "/api/v1/query?query={}&time={}.{:03}",
                urlencode(&selector),
                s.t.div_euclid(1000),
                s.t.rem_euclid(1000)
            );
            let (status, body) = http_get(port, &path).unwrap();
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let result = &v["data"]["result"];
            assert_eq!(result.as_array().map(Vec::len), Some(1), "{body}");
            let got: f64 = result[0]["value"][1].as_str().unwrap().parse().unwrap();
            assert_eq!(got.to_bits(), s.v.to_bits(), "{selector} at {}", s.t);
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} samples checked of {} series",
        series.len()
    );
    // Sample counts per metric over the whole block through PromQL aggregation.
    let end = meta.max_time - 1;
    for family in ["metric_0", "metric_1"] {
        let want: usize = series
            .iter()
            .filter(|(l, _)| l.metric_name() == Some(family))
            .map(|(_, s)| s.len())
            .sum();
        let path = format!(
            "/api/v1/query?query={}&time={}.{:03}",
            urlencode(&format!(
                "sum(count_over_time({family}[{}ms]))",
                end - meta.min_time + 1
            )),
            end.div_euclid(1000),
            end.rem_euclid(1000)
        );
        let (_, body) = http_get(port, &path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["data"]["result"][0]["value"][1].as_str(),
            Some(want.to_string().as_str()),
            "{body}"
        );
    }
}
