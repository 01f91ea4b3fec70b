//! Where work arrives from NATS: the durable JetStream consumer `executor` on the `DETECTIONS`
//! stream (a detection is acknowledged only once its action is durable in knowledge, so an
//! executor that was down receives what it missed), and the operator's and verification's
//! decisions on `actions.approve`, `actions.reject`, `actions.rollback` and `rollback.requested`.
//! Every connection retries forever; a malformed message, or one knowledge refuses, is logged
//! and dropped (terminated), never retried: a poison message must not come back every few
//! seconds for the stream's lifetime.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use lifecycle::Shutdown;
use proto::events::{ActionDecision, Detection, RollbackRequest};
use proto::subjects;
use tracing::{info, warn};

use crate::engine::Engine;

/// How long a delivered detection may stay unacknowledged before JetStream redelivers it.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// Wait before a detection that could not be handled (knowledge down) is offered again.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// Creates the streams this executor relies on (idempotent) and its durable consumer.
pub async fn ensure(
    jetstream: &jetstream::Context,
) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
    let detections = jetstream
        .get_or_create_stream(jetstream::stream::Config {
            name: subjects::DETECTIONS_STREAM.into(),
            subjects: vec![subjects::DETECTIONS.into()],
            max_age: subjects::STREAM_MAX_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    jetstream
        .get_or_create_stream(jetstream::stream::Config {
            name: subjects::ACTIONS_STREAM.into(),
            subjects: vec![subjects::ACTIONS_COMPLETED.into()],
            max_age: subjects::STREAM_MAX_AGE,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    detections
        .get_or_create_consumer(
            subjects::EXECUTOR_CONSUMER,
            pull::Config {
                durable_name: Some(subjects::EXECUTOR_CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

/// Consumes detections until shutdown, setting the consumer up again whenever NATS is back.
pub async fn detections(engine: Arc<Engine>, jetstream: jetstream::Context, shutdown: Shutdown) {
    let mut wait = Duration::from_millis(500);
    loop {
        let attempt = async {
            let consumer = ensure(&jetstream).await?;
            let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
            info!(
                "consuming detections (durable consumer {})",
                subjects::EXECUTOR_CONSUMER
            );
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| e.to_string())?;
                let detection: Detection = match serde_json::from_slice(&message.payload) {
                    Ok(detection) => detection,
                    Err(error) => {
                        warn!(%error, bytes = message.payload.len(), "malformed detection dropped");
                        let _ = message.ack_with(AckKind::Term).await;
                        continue;
                    }
                };
                match engine.on_detection(detection).await {
                    Ok(()) => {
                        let _ = message.double_ack().await;
                    }
                    Err(error) if error.kind() == proto::error::ErrorKind::InvalidInput => {
                        warn!(%error, "detection dropped");
                        let _ = message.ack_with(AckKind::Term).await;
                    }
                    Err(error) => {
                        warn!(%error, "detection not handled yet; offered again shortly");
                        let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                    }
                }
            }
            Err::<(), String>("the detections subscription ended".into())
        };
        tokio::select! {
            () = shutdown.wait() => return,
            result = attempt => {
                if let Err(error) = result {
                    warn!(%error, "detections consumer interrupted; retrying");
                }
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

/// The operator's decisions and verification's rollback requests, until shutdown.
pub async fn decisions(engine: Arc<Engine>, nats: async_nats::Client, shutdown: Shutdown) {
    let subscribe = |subject: &'static str| {
        let nats = nats.clone();
        async move { nats.subscribe(subject).await }
    };
    let (approve, reject, rollback, requested) = match tokio::try_join!(
        subscribe(subjects::ACTIONS_APPROVE),
        subscribe(subjects::ACTIONS_REJECT),
        subscribe(subjects::ACTIONS_ROLLBACK),
        subscribe(subjects::ROLLBACK_REQUESTED),
    ) {
        Ok(subscriptions) => subscriptions,
        Err(error) => {
            warn!(%error, "cannot subscribe to decisions");
            return;
        }
    };
    let mut all = futures::stream::select_all([approve, reject, rollback, requested]);
    loop {
        let message = tokio::select! {
            () = shutdown.wait() => return,
            message = all.next() => match message { Some(m) => m, None => return },
        };
        let subject = message.subject.to_string();
        let engine = engine.clone();
        tokio::spawn(async move {
            let outcome = if subject == subjects::ROLLBACK_REQUESTED {
                match serde_json::from_slice::<RollbackRequest>(&message.payload) {
                    Ok(r) => engine
                        .rollback(&r.action_id, "verification", &r.reason)
                        .await
                        .map(|_| ()),
                    Err(e) => {
                        warn!(%subject, error = %e, "malformed message dropped");
                        return;
                    }
                }
            } else {
                let decision = match serde_json::from_slice::<ActionDecision>(&message.payload) {
                    Ok(d) => d,
                    Err(e) => {
                        warn!(%subject, error = %e, "malformed message dropped");
                        return;
                    }
                };
                let by = if decision.requested_by.is_empty() {
                    "NATS"
                } else {
                    decision.requested_by.as_str()
                };
                match subject.as_str() {
                    subjects::ACTIONS_APPROVE => engine.approve(&decision.action_id, by).await,
                    subjects::ACTIONS_REJECT => engine.reject(&decision.action_id, by, "").await,
                    _ => engine.rollback(&decision.action_id, by, "").await,
                }
                .map(|_| ())
            };
            if let Err(error) = outcome {
                warn!(%subject, %error, "decision not carried out");
            }
        });
    }
}
