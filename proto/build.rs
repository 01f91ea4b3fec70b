//! Generates the tonic/prost code for the three protos with Debian's `protoc` (or `$PROTOC`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["metrics.proto", "knowledge.proto", "executor.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Knowledge stores these messages as JSON (as the original stored `config:system`), and the
        // gateway serves them: snake_case field names, missing fields take their defaults.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        .type_attribute(".", "#[serde(default)]")
        .compile_protos(&protos, &["."])?;
    Ok(())
}
