//! Compiles Skiff's `.proto` contracts with tonic's prost code generator.
//! `protoc` must be installed (Debian: `protobuf-compiler`).

const PROTO_FILES: &[&str] = &["proto/skiff/node/v1/node.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    tonic_prost_build::configure().compile_protos(PROTO_FILES, &["proto"])?;
    Ok(())
}
