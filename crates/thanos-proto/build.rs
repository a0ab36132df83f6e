//! Compiles the workspace `proto/` tree with `protox` (pure Rust, no `protoc`)
//! and generates prost messages plus tonic clients/servers into `OUT_DIR`.

use std::error::Error;
use std::path::PathBuf;

use prost::Message;

/// Every proto file we compile, relative to the include root `proto/`.
const PROTOS: &[&str] = &[
    "store/labelpb/types.proto",
    "store/storepb/types.proto",
    "store/storepb/rpc.proto",
    "store/storepb/prompb/types.proto",
    "store/storepb/prompb/remote.proto",
    "store/storepb/writev2pb/types.proto",
    "store/hintspb/hints.proto",
    "info/infopb/rpc.proto",
    "exemplars/exemplarspb/rpc.proto",
    "status/statuspb/rpc.proto",
    "metadata/metadatapb/rpc.proto",
    "prometheus/prompb/types.proto",
    "prometheus/prompb/remote.proto",
    "prometheus/prompb/io/prometheus/write/v2/types.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let include_root = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", include_root.display());
    println!("cargo:rerun-if-changed=build.rs");

    let files: Vec<PathBuf> = PROTOS.iter().map(|p| include_root.join(p)).collect();
    // Source info is kept so proto comments become rustdoc on generated items.
    let fds = protox::compile(&files, [&include_root])?;

    // Descriptor set for gRPC reflection: same files, without source info to
    // keep the embedded blob small.
    let mut reflection = fds.clone();
    for file in &mut reflection.file {
        file.source_code_info = None;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("thanos_descriptor.bin"),
        reflection.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".")
        // The model's label is the wire's: no conversion between the two.
        .extern_path(".thanos.Label", "::thanos_model::Label")
        .codec_path("crate::codec::ThanosCodec")
        .compile_fds(fds)?;
    Ok(())
}
