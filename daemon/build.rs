//! Generates the gRPC inference service from `proto/inference.proto` with a vendored `protoc`,
//! so building needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/inference.proto"],
        &["proto"],
    )?;
    Ok(())
}
