//! Where work arrives from NATS: the durable JetStream consumer `executor` on the `DETECTIONS`
//! stream (a detection is acknowledged only once its action is durable in knowledge, so an
//! executor that was down receives what it missed), and the operator's and verification's
//! decisions on `actions.approve`, `actions.reject`, `actions.rollback` and `rollback.requested`.
//! Every connection retries forever; a malformed message, or one knowledge refuses, is logged
//! and dropped (terminated), never retried: a poison message must not come back every few
//! seconds for the stream's lifetime.

use std::sync::Arc;

use async_nats::jetstream;
use futures::StreamExt;
use lifecycle::Shutdown;
use lifecycle::consumer::{DurableConsumer, Failure};
use proto::error::ErrorKind;
use proto::events::{ActionDecision, Detection, RollbackRequest};
use proto::subjects;
use tracing::warn;

use crate::engine::Engine;

/// The executor's durable consumer on `DETECTIONS`; it also creates the `ACTIONS` stream that
/// `actions.completed` is published to.
pub fn detections_consumer() -> DurableConsumer {
    DurableConsumer::new(
        jetstream::stream::Config {
            name: subjects::DETECTIONS_STREAM.into(),
            subjects: vec![subjects::DETECTIONS.into()],
            max_age: subjects::STREAM_MAX_AGE,
            ..Default::default()
        },
        subjects::EXECUTOR_CONSUMER,
    )
    .also_ensure(jetstream::stream::Config {
        name: subjects::ACTIONS_STREAM.into(),
        subjects: vec![subjects::ACTIONS_COMPLETED.into()],
        max_age: subjects::STREAM_MAX_AGE,
        ..Default::default()
    })
}

/// Consumes detections until shutdown. Knowledge refusing what a detection carries
/// (`InvalidInput`) drops it; any other failure means nothing durable happened yet, and it is
/// offered again.
pub async fn detections(engine: Arc<Engine>, jetstream: jetstream::Context, shutdown: Shutdown) {
    detections_consumer()
        .run(jetstream, shutdown, |detection: Detection| {
            let engine = engine.clone();
            async move {
                engine.on_detection(detection).await.map_err(|error| {
                    if error.kind() == ErrorKind::InvalidInput {
                        Failure::poison(error)
                    } else {
                        Failure::retry(error)
                    }
                })
            }
        })
        .await
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
        engine.clone().track(async move {
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
