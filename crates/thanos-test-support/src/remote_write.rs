//! Remote-write 1.0 requests as Prometheus sends them, for tests that post to a receiver.

use thanos_proto::prometheus::{TimeSeries, WriteRequest};

/// A POST of `series` to `url` (e.g. `http://127.0.0.1:PORT/api/v1/receive`): a snappy-compressed
/// protobuf `WriteRequest` with the remote-write 1.0 headers. Add headers (such as a tenant)
/// before sending.
///
/// # Panics
/// Panics if the request cannot be encoded.
pub fn request(
    client: &reqwest::Client,
    url: &str,
    series: Vec<TimeSeries>,
) -> reqwest::RequestBuilder {
    let body = thanos_proto::remote_write::encode(&WriteRequest {
        timeseries: series,
        metadata: vec![],
    })
    .unwrap_or_else(|err| panic!("encode remote-write request for {url}: {err}"));
    client
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_proto::prometheus::{Label, Sample};

    #[test]
    fn builds_a_snappy_protobuf_post() {
        let series = vec![TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: "m".into(),
            }],
            samples: vec![Sample {
                value: 1.5,
                timestamp: 7,
            }],
            ..Default::default()
        }];
        let client = reqwest::Client::new();
        let req = request(&client, "http://127.0.0.1:1/api/v1/receive", series.clone())
            .build()
            .unwrap();
        assert_eq!(req.method(), "POST");
        assert_eq!(req.headers()["content-encoding"], "snappy");
        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
        assert_eq!(req.headers()["x-prometheus-remote-write-version"], "0.1.0");
        let body = req.body().and_then(reqwest::Body::as_bytes).unwrap();
        let decoded: WriteRequest = thanos_proto::remote_write::decode(body, 1 << 20).unwrap();
        assert_eq!(decoded.timeseries, series);
    }
}
