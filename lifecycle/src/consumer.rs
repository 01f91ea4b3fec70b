//! A durable JetStream pull consumer, run the one way every service runs it: the stream(s) and
//! the consumer are created if missing (idempotent), each message is decoded and handed to the
//! service, then acknowledged once its effect is durable, offered again after a delay when the
//! failure is transient (`Nak` with a delay), or terminated when it never can be handled (a
//! poison message must not come back every few seconds for the stream's lifetime). Connection
//! losses are retried with a growing wait; shutdown stops fetching, and a message being handled
//! when it starts is finished first.
//!
//! Used as `DurableConsumer::new(stream_config, "executor").run(jetstream, shutdown, handle)`,
//! where `handle` takes a decoded message and answers `Ok(())` or a [`Failure`].

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::Shutdown;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a decoded message was not handled.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Nothing durable happened and it may work later (a peer is down): offered again after the
    /// consumer's retry delay.
    #[error("{0}")]
    Retry(Source),
    /// It never can be handled: terminated, never redelivered.
    #[error("{0}")]
    Poison(Source),
}

impl Failure {
    pub fn retry(error: impl Into<Source>) -> Self {
        Self::Retry(error.into())
    }

    pub fn poison(error: impl Into<Source>) -> Self {
        Self::Poison(error.into())
    }
}

/// Why the consumer lost its connection (it is set up again after a wait).
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {source}")]
pub struct ConsumerError {
    doing: &'static str,
    #[source]
    source: Source,
}

impl ConsumerError {
    fn new(doing: &'static str, source: impl Into<Source>) -> Self {
        Self {
            doing,
            source: source.into(),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Acknowledged,
    OfferedAgain,
    Terminated,
}

/// One durable pull consumer on one stream.
#[derive(Debug, Clone)]
pub struct DurableConsumer {
    stream: jetstream::stream::Config,
    /// Streams created beside it (ones the service publishes to).
    also: Vec<jetstream::stream::Config>,
    name: String,
    ack_wait: Duration,
    retry_delay: Duration,
}

/// How long a delivered message may stay unacknowledged before JetStream redelivers it.
pub const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long a message that failed transiently waits before it is offered again.
pub const RETRY_DELAY: Duration = Duration::from_secs(5);
/// The longest wait between two attempts to set the consumer up again.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(30);

impl DurableConsumer {
    /// The consumer `name` (durable, explicit acknowledgement) on `stream`.
    pub fn new(stream: jetstream::stream::Config, name: impl Into<String>) -> Self {
        Self {
            stream,
            also: Vec::new(),
            name: name.into(),
            ack_wait: ACK_WAIT,
            retry_delay: RETRY_DELAY,
        }
    }

    /// Also creates `stream` (idempotent) whenever the consumer is set up.
    pub fn also_ensure(mut self, stream: jetstream::stream::Config) -> Self {
        self.also.push(stream);
        self
    }

    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    pub fn retry_delay(mut self, retry_delay: Duration) -> Self {
        self.retry_delay = retry_delay;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the streams and the consumer if they are missing.
    pub async fn ensure(
        &self,
        jetstream: &jetstream::Context,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, ConsumerError> {
        for config in &self.also {
            jetstream
                .get_or_create_stream(config.clone())
                .await
                .map_err(|e| ConsumerError::new("creating a stream", e))?;
        }
        let stream = jetstream
            .get_or_create_stream(self.stream.clone())
            .await
            .map_err(|e| ConsumerError::new("creating the stream", e))?;
        stream
            .get_or_create_consumer(
                &self.name,
                pull::Config {
                    durable_name: Some(self.name.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ConsumerError::new("creating the consumer", e))
    }

    /// Hands every message, decoded as `T`, to `handle` until shutdown, setting the consumer up
    /// again whenever NATS is back. A message that does not decode is terminated.
    pub async fn run<T, F, Fut>(&self, jetstream: jetstream::Context, shutdown: Shutdown, handle: F)
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let mut handle = handle;
        let mut wait = Duration::from_millis(500);
        loop {
            match self.consume(&jetstream, &shutdown, &mut handle).await {
                Ok(()) => return,
                Err(error) => {
                    warn!(consumer = %self.name, %error, "consumer interrupted; retrying")
                }
            }
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(MAX_RECONNECT_WAIT);
        }
    }

    /// One connection's worth of messages; `Ok` once shutdown started.
    async fn consume<T, F, Fut>(
        &self,
        jetstream: &jetstream::Context,
        shutdown: &Shutdown,
        handle: &mut F,
    ) -> Result<(), ConsumerError>
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let setup = async {
            let consumer = self.ensure(jetstream).await?;
            consumer
                .messages()
                .await
                .map_err(|e| ConsumerError::new("subscribing", e))
        };
        let mut messages = tokio::select! {
            () = shutdown.wait() => return Ok(()),
            messages = setup => messages?,
        };
        info!(consumer = %self.name, "consuming");
        loop {
            // Shutdown stops the wait for the next message, never the handling of one.
            let message = tokio::select! {
                biased;
                () = shutdown.wait() => return Ok(()),
                next = messages.next() => match next {
                    Some(message) => message.map_err(|e| ConsumerError::new("receiving", e))?,
                    None => return Err(ConsumerError::new("receiving", "the subscription ended")),
                },
            };
            self.dispose(message, handle).await;
        }
    }

    async fn dispose<T, F, Fut>(&self, message: jetstream::Message, handle: &mut F) -> Disposition
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<(), Failure>>,
    {
        let decoded = serde_json::from_slice::<T>(&message.payload);
        let (disposition, ack) = match decoded {
            Err(error) => {
                warn!(consumer = %self.name, %error, bytes = message.payload.len(), "malformed message dropped");
                (Disposition::Terminated, AckKind::Term)
            }
            Ok(value) => match handle(value).await {
                Ok(()) => (Disposition::Acknowledged, AckKind::Ack),
                Err(Failure::Poison(error)) => {
                    warn!(consumer = %self.name, %error, "message dropped");
                    (Disposition::Terminated, AckKind::Term)
                }
                Err(Failure::Retry(error)) => {
                    warn!(consumer = %self.name, %error, "message not handled yet; offered again shortly");
                    (
                        Disposition::OfferedAgain,
                        AckKind::Nak(Some(self.retry_delay)),
                    )
                }
            },
        };
        // A lost acknowledgement is redelivered after ACK_WAIT: handlers are idempotent.
        let acknowledged = match ack {
            AckKind::Ack => message.double_ack().await,
            other => message.ack_with(other).await,
        };
        if let Err(error) = acknowledged {
            warn!(consumer = %self.name, %error, ?disposition, "acknowledgement not delivered");
        }
        disposition
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn handled_messages_are_acked_poison_terminated_and_transient_failures_offered_again() {
        let nats = testkit::NatsServer::start();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = jetstream::new(client);
        let consumer = DurableConsumer::new(
            jetstream::stream::Config {
                name: "WORK".into(),
                subjects: vec!["work".into()],
                ..Default::default()
            },
            "worker",
        )
        .retry_delay(Duration::from_millis(200));
        consumer.ensure(&jetstream).await.unwrap();
        for payload in [
            r#""ok""#,
            "not json",
            r#""poison""#,
            r#""flaky""#,
            r#""last""#,
        ] {
            jetstream
                .publish("work", payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let shutdown = Shutdown::new();
        let running = {
            let (consumer, jetstream, shutdown, seen) = (
                consumer.clone(),
                jetstream.clone(),
                shutdown.clone(),
                seen.clone(),
            );
            tokio::spawn(async move {
                consumer
                    .run(jetstream, shutdown, move |word: String| {
                        let seen = seen.clone();
                        async move {
                            let mut seen = seen.lock().unwrap();
                            let before = seen.iter().filter(|w| **w == word).count();
                            seen.push(word.clone());
                            match word.as_str() {
                                "poison" => Err(Failure::poison("never")),
                                "flaky" if before == 0 => Err(Failure::retry("not yet")),
                                _ => Ok(()),
                            }
                        }
                    })
                    .await
            })
        };

        let deadline = Instant::now() + Duration::from_secs(20);
        let info = loop {
            let mut handle = jetstream
                .get_stream("WORK")
                .await
                .unwrap()
                .get_consumer::<pull::Config>("worker")
                .await
                .ok();
            if let Some(handle) = handle.as_mut() {
                let info = handle.info().await.unwrap().clone();
                if info.ack_floor.stream_sequence == 5 {
                    break info;
                }
            }
            assert!(Instant::now() < deadline, "not every message was settled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(info.num_ack_pending, 0);
        assert_eq!(
            info.num_redelivered, 0,
            "redeliveries are counted while pending"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            ["ok", "poison", "flaky", "last", "flaky"],
            "the malformed message never reached the handler; the flaky one came back once"
        );

        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .expect("stops on shutdown")
            .unwrap();
    }
}
