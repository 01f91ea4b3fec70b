//! `executor` binary: reads its settings, serves gRPC on GRPC_PORT and health on HEALTH_PORT.

use executor::{App, Config};
use lifecycle::{Env, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env(&Env::from_process()?)?;
    lifecycle::telemetry::init(config.log_json);
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().on_signals());
    let app = App::build(config, shutdown).await?;
    tracing::info!(grpc = %app.grpc_addr(), health = %app.health_addr(), "executor listening");
    app.run().await?;
    Ok(())
}
