//! Where snapshots go: a long-lived client stream to the analyser (reconnecting with backoff),
//! NATS `metrics` as JSON, and a health report to knowledge. Snapshots are lossy by design
//! (docs/decisions/0002): while the analyser is away they are dropped, counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lifecycle::Shutdown;
use proto::clients::Knowledge;
use proto::knowledge::{DatabaseFeatures, UpdateDatabaseHealthRequest};
use proto::metrics::MetricSnapshot;
use proto::metrics::metrics_service_client::MetricsServiceClient;
use proto::status::DatabaseStatus;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use crate::snapshot;
use crate::table_list::SentTables;

/// Snapshots waiting for the analyser stream.
const QUEUE: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How a database's collection went, for knowledge.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub database_id: String,
    /// `Healthy`, `Degraded` (some queries failed) or `Unreachable`.
    pub status: DatabaseStatus,
    pub health_score: f64,
    pub version: String,
    pub features: Option<DatabaseFeatures>,
    pub last_error: String,
}

#[derive(Clone)]
pub struct Outputs {
    analyser: mpsc::Sender<MetricSnapshot>,
    nats: Option<async_nats::Client>,
    knowledge: Knowledge,
    dropped: Arc<AtomicU64>,
    /// Numbers the analyser streams opened so far: a database's first snapshot on a new stream
    /// carries its whole table list.
    streams: Arc<AtomicU64>,
}

impl Outputs {
    /// Starts the analyser stream task; connects to NATS in the background (never gives up).
    pub async fn start(
        analyser_address: String,
        grpc_tls: lifecycle::grpc::GrpcTls,
        nats: Option<lifecycle::nats::NatsSettings>,
        knowledge: Knowledge,
        shutdown: Shutdown,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let streams = Arc::new(AtomicU64::new(0));
        tokio::spawn(stream_to_analyser(
            analyser_address,
            grpc_tls,
            rx,
            streams.clone(),
            shutdown,
        ));
        let nats = match nats {
            Some(settings) => match settings.connect("collector").await {
                Ok(client) => Some(client),
                Err(error) => {
                    warn!(%error, "invalid NATS_URL; metrics will not be published");
                    None
                }
            },
            None => None,
        };
        Self {
            analyser: tx,
            nats,
            knowledge,
            dropped: Arc::new(AtomicU64::new(0)),
            streams,
        }
    }

    /// Sends a snapshot with its whole table list to NATS, and to the analyser with only what
    /// changed in its table list since the last one `sent` (`table_list`).
    /// Publishes `snapshot` on NATS (whole) and sends it to the analyser (its table list as
    /// `sent` encodes it); returns the encoded size of what the analyser was sent.
    pub async fn publish(&self, mut snapshot: MetricSnapshot, sent: &mut SentTables) -> usize {
        if let Some(nats) = &self.nats {
            match serde_json::to_vec(&snapshot::to_event(&snapshot)) {
                Ok(json) => {
                    if let Err(error) = nats.publish(proto::subjects::METRICS, json.into()).await {
                        debug!(%error, "metrics not published on NATS");
                    }
                }
                Err(error) => warn!(%error, "metrics not serialisable"),
            }
        }
        sent.encode(
            &mut snapshot,
            self.streams.load(Ordering::Relaxed),
            Instant::now(),
        );
        let bytes = prost::Message::encoded_len(&snapshot);
        if self.analyser.try_send(snapshot).is_err() {
            sent.lost();
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                warn!(
                    dropped,
                    "analyser is not keeping up or unreachable; snapshots dropped"
                );
            }
        }
        bytes
    }

    pub async fn report_health(&self, report: HealthReport) {
        let request = UpdateDatabaseHealthRequest {
            database_id: report.database_id.clone(),
            last_seen: 0,
            status: report.status.to_string(),
            health_score: report.health_score,
            version: report.version,
            features: report.features,
            last_error: report.last_error,
        };
        if let Err(error) = self
            .knowledge
            .call("UpdateDatabaseHealth", |mut k| async move {
                k.update_database_health(request).await
            })
            .await
        {
            debug!(database_id = %report.database_id, %error, "health not reported");
        }
    }
}

/// One client stream at a time, reopened with backoff whenever it ends or fails. Each stream gets
/// its own channel fed from the queue: the transport may keep a failed stream's body alive for a
/// while, and it must not keep the queue with it.
async fn stream_to_analyser(
    address: String,
    grpc_tls: lifecycle::grpc::GrpcTls,
    mut queue: mpsc::Receiver<MetricSnapshot>,
    streams: Arc<AtomicU64>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(500);
    let mut client = match grpc_tls.channel(&address) {
        Ok(channel) => MetricsServiceClient::new(channel),
        Err(error) => {
            warn!(%error, address, "invalid ANALYSER_ADDRESS; snapshots are not streamed");
            return;
        }
    };
    loop {
        let (tx, rx) = mpsc::channel(16);
        let forward = async {
            while let Some(snapshot) = queue.recv().await {
                if tx.send(snapshot).await.is_err() {
                    return false;
                }
            }
            true
        };
        let opened = Instant::now();
        streams.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            result = client.stream_metrics(ReceiverStream::new(rx)) => match result {
                Ok(ack) => info!(received = ack.into_inner().total_metrics, "analyser stream closed"),
                Err(status) => warn!(code = ?status.code(), error = %status.message(), "analyser stream failed"),
            },
            queue_closed = forward => if queue_closed { return },
            _ = shutdown.wait() => return,
        }
        if opened.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_millis(500);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
