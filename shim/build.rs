//! Generates the start handshake's messages (`proto/bootstrap.proto`) with
//! rust-protobuf's pure-Rust parser: no `protoc` needed.

fn main() {
    protobuf_codegen::Codegen::new()
        .pure()
        .includes(["proto"])
        .input("proto/bootstrap.proto")
        .cargo_out_dir("proto")
        .run_from_script();
}
