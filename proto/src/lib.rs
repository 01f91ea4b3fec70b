//! The wire contract between StartupMonkey's services: generated gRPC code for the three protos,
//! the NATS subject names and the JSON payloads carried on them.
//!
//! Services depend on this crate and never on each other.

pub mod actions;
pub mod clients;
pub mod error;
pub mod events;
pub mod sql;
pub mod status;
pub mod subjects;

/// `metrics.proto` (protobuf package `proto`): collector -> analyser.
pub mod metrics {
    tonic::include_proto!("proto");
}

/// `knowledge.proto`: everyone -> knowledge.
pub mod knowledge {
    tonic::include_proto!("knowledge");
}

/// `executor.proto`: gateway -> executor.
pub mod executor {
    tonic::include_proto!("executor");
}
