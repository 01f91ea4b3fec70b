//! `collector` binary: reads its settings and serves health on HEALTH_PORT until stopped.

use collector::{App, Config};
use lifecycle::{Env, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env(&Env::from_process()?)?;
    lifecycle::telemetry::init(config.log_json);
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().on_signals());
    let app = App::build(config, shutdown).await?;
    tracing::info!(health = %app.health_addr(), "collector listening");
    app.run().await?;
    Ok(())
}
