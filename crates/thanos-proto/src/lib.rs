//! Protobuf messages and gRPC services of the Thanos wire protocol, generated
//! at build time from the workspace `proto/` tree (our own `.proto` files,
//! written from `docs/storeapi.md` and `docs/remote-write.md`).
//!
//! Mirrors the Thanos proto packages `storepb`, `labelpb`, `storepb/prompb`,
//! `storepb/writev2pb`, `hintspb`, `infopb`, `exemplarspb`, `statuspb` and
//! `metadatapb`
//! (<https://github.com/thanos-io/thanos/tree/e103a81bd5943697394afcb4fb592b6ffa806c30/pkg>)
//! and Prometheus' `prompb` (remote write 1.0 / remote read) and
//! `prompb/io/prometheus/write/v2` (remote write 2.0). Proto package names,
//! service names, method names and field numbers are identical to upstream,
//! so the bytes on the wire and the gRPC paths are the same.
//!
//! The Rust module tree follows the proto packages:
//!
//! | proto package | module |
//! |---|---|
//! | `thanos` (storepb, labelpb, exemplarspb, statuspb, metadatapb) | [`thanos`] |
//! | `thanos.info` | [`thanos::info`] |
//! | `thanos.io.prometheus.write.v2` | [`thanos::io::prometheus::write::v2`] |
//! | `prometheus_copy` | [`prometheus_copy`] |
//! | `hintspb` | [`hintspb`] |
//! | `prometheus` | [`prometheus`] |
//! | `io.prometheus.write.v2` | [`io::prometheus::write::v2`] |
//!
//! Every service comes with a tonic client (`<service>_client`) and server
//! (`<service>_server`), all using [`codec::ThanosCodec`] (prost, with series frames
//! encoded in one pass). All proto `bytes` fields are [`bytes::Bytes`], so
//! decoding from a `Bytes` buffer (as tonic does) does not copy chunk data.
//! Well-known types (`google.protobuf.Any`, `Duration`) are [`prost_types`].
//!
//! Hand-written helpers: [`method`] (fully-qualified gRPC paths), [`storepb`]
//! (model conversions and the StoreAPI external-label and shard rules),
//! [`FILE_DESCRIPTOR_SET`] (for gRPC reflection), [`remote_write`]
//! (snappy-compressed HTTP remote-write bodies) and [`series_codec`] (a Series client
//! decoding frames straight into model labels).

pub mod codec;
pub mod method;
pub mod remote_write;
pub mod series_codec;
pub mod storepb;

/// Encoded `google.protobuf.FileDescriptorSet` of every compiled proto file
/// (imports included, source info stripped), for registering gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/thanos_descriptor.bin"));

/// Proto package `thanos`: StoreAPI (`thanos.Store`), `thanos.WriteableStore`,
/// `thanos.Exemplars`, `thanos.Status`, `thanos.Metadata` and the
/// storepb/labelpb types.
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod thanos {
    include!(concat!(env!("OUT_DIR"), "/thanos.rs"));

    /// The `thanos.Label` message is the model's label type (see `thanos_model::Label`).
    pub use thanos_model::Label;

    /// Proto package `thanos.info`: the Info API (`thanos.info.Info`).
    pub mod info {
        include!(concat!(env!("OUT_DIR"), "/thanos.info.rs"));
    }

    /// Namespace holding Thanos' copy of remote write 2.0.
    pub mod io {
        /// Namespace holding Thanos' copy of remote write 2.0.
        pub mod prometheus {
            /// Namespace holding Thanos' copy of remote write 2.0.
            pub mod write {
                /// Proto package `thanos.io.prometheus.write.v2`: Thanos' copy
                /// of the remote write 2.0 messages.
                pub mod v2 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/thanos.io.prometheus.write.v2.rs"
                    ));
                }
            }
        }
    }
}

/// Proto package `prometheus_copy`: Thanos' renamed copy of the Prometheus
/// remote write / read messages (labels are [`thanos::Label`]).
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod prometheus_copy {
    include!(concat!(env!("OUT_DIR"), "/prometheus_copy.rs"));
}

/// Proto package `hintspb`: store hints carried in `google.protobuf.Any`.
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod hintspb {
    include!(concat!(env!("OUT_DIR"), "/hintspb.rs"));
}

/// Proto package `prometheus`: Prometheus remote write 1.0 and remote read.
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod prometheus {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// Namespace of the Prometheus remote write 2.0 proto package.
pub mod io {
    /// Namespace of the Prometheus remote write 2.0 proto package.
    pub mod prometheus {
        /// Namespace of the Prometheus remote write 2.0 proto package.
        pub mod write {
            /// Proto package `io.prometheus.write.v2`: Prometheus remote
            /// write 2.0 (`Request`, symbol-table based series).
            #[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
            }
        }
    }
}
