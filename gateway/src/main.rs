//! `gateway` binary: reads its settings and serves HTTP on PORT (3001) until stopped;
//! `gateway openapi` prints the REST API's OpenAPI document instead (for the dashboard's types).

use gateway::{App, Config};
use lifecycle::{Env, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        print!("{}", gateway::api::openapi::document_json());
        return Ok(());
    }
    let config = Config::from_env(&Env::from_process()?)?;
    lifecycle::telemetry::init(config.log_json);
    let shutdown = Shutdown::new();
    tokio::spawn(shutdown.clone().on_signals());
    let app = App::build(config, shutdown).await?;
    tracing::info!(http = %app.http_addr(), "gateway listening");
    app.run().await?;
    Ok(())
}
