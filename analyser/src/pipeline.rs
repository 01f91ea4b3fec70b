//! What happens to each snapshot: the thresholds in force, every detector, registration in
//! knowledge (which deduplicates by key and refuses keys that are cooling down), and publication
//! of each new detection on `detections` through JetStream, so an executor that is down receives
//! it when it returns (docs/decisions/0002).

use std::time::Duration;

use lifecycle::metrics::{self, Counter, Histogram};
use proto::clients::Knowledge;
use proto::events::Detection;
use proto::knowledge::{RegisterDetectionRequest, ResolveDetectionRequest};
use proto::metrics::MetricSnapshot;
use proto::status::{Detector, RegistrationOutcome, Resolution};
use tracing::{debug, info, warn};

use crate::advisor::Advisor;
use crate::detectors;
use crate::thresholds::ThresholdSource;

/// The JetStream stream that keeps detections until they are consumed.
pub const DETECTIONS_STREAM: &str = proto::subjects::DETECTIONS_STREAM;
/// How long NATS may take to accept a detection, and JetStream to acknowledge it.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(5);

/// Why a detection was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("detection not encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("NATS did not accept the message within {} s", PUBLISH_DEADLINE.as_secs())]
    NotAccepted,
    #[error("NATS refused the message: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    #[error("JetStream did not acknowledge within {} s", PUBLISH_DEADLINE.as_secs())]
    NotAcknowledged,
}

/// How many snapshots of each database went through the detectors and registration since the
/// analyser started, shown on `/health` as `snapshots_analysed` (`{"<database id>": n}`): the
/// proof that the pipeline ran, which a test of "nothing was found" waits for first. For
/// Prometheus (`/metrics`), every snapshot taken and the time each took, all databases together.
#[derive(Debug, Clone)]
pub struct Analysed {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
    snapshots: Counter,
    seconds: Histogram,
}

impl Default for Analysed {
    fn default() -> Self {
        Self {
            counts: Default::default(),
            snapshots: Counter::default(),
            seconds: metrics::duration_histogram(),
        }
    }
}

impl Analysed {
    /// Registers `snapshots_analysed_total` and `snapshot_analysis_seconds`.
    pub fn register(&self, registry: &mut metrics::Registry) {
        registry.register(
            "snapshots_analysed",
            "Snapshots the analyser took (every database)",
            self.snapshots.clone(),
        );
        registry.register_with_unit(
            "snapshot_analysis",
            "Time from a snapshot's arrival to its detections registered and published",
            metrics::Unit::Seconds,
            self.seconds.clone(),
        );
    }

    fn add(&self, database_id: &str) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(database_id.to_owned()).or_default() += 1;
    }

    fn took(&self, started: std::time::Instant) {
        self.snapshots.inc();
        self.seconds.observe(started.elapsed().as_secs_f64());
    }

    /// The count for one database (0 before its first snapshot).
    pub fn of(&self, database_id: &str) -> u64 {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.get(database_id).copied().unwrap_or(0)
    }

    /// `{"<database id>": n}`.
    pub fn to_json(&self) -> serde_json::Value {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::json!(*counts)
    }
}

/// What one snapshot produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Problems the detectors found.
    pub found: usize,
    /// Of those, new ones registered and published.
    pub published: usize,
}

pub struct Pipeline {
    /// `ENABLE_ALL_DETECTORS`: when false, snapshots are received and acknowledged but no
    /// detector runs (the original's switch, which it read and then ignored).
    pub detectors_enabled: bool,
    pub thresholds: ThresholdSource,
    pub advisor: Advisor,
    pub verifier: std::sync::Arc<crate::verification::Verifier>,
    /// Per database: whether session detections may be active (see `clear_vanished`).
    pub session_watch: tokio::sync::Mutex<std::collections::HashMap<String, bool>>,
    pub knowledge: Knowledge,
    pub jetstream: async_nats::jetstream::Context,
    /// Counted once a snapshot's detections are registered and published (or found not new).
    pub analysed: Analysed,
    /// Registered, but neither published nor withdrawn (knowledge went away in between, so
    /// knowledge keeps them active and would call their keys "not new" for ever): offered again
    /// before each cycle's registrations — published if NATS is back, else withdrawn.
    pub unsettled: tokio::sync::Mutex<Vec<Detection>>,
}

/// What became of a registered detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Published,
    /// Resolved as `cleared` without a cool-down: the next cycle registers it anew.
    Withdrawn,
    /// Neither: kept in `unsettled`.
    Unsettled,
}

impl Pipeline {
    /// Runs the detectors on one snapshot and publishes what is new.
    pub async fn process(&self, snapshot: &MetricSnapshot) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = self.analyse(snapshot).await;
        self.analysed.took(started);
        outcome
    }

    async fn analyse(&self, snapshot: &MetricSnapshot) -> Outcome {
        // Verification is not a detector: it runs whatever ENABLE_ALL_DETECTORS says.
        self.verifier.observe(snapshot).await;
        if !self.detectors_enabled {
            return Outcome::default();
        }
        let thresholds = self.thresholds.current().await;
        let mut found = detectors::detect_all(snapshot, &thresholds);
        let verifying = self
            .verifier
            .tables_being_verified(&snapshot.database_id)
            .await;
        let advised = self.advisor.advise(snapshot, &thresholds, &verifying).await;
        detectors::explained_by_indexes(&mut found, snapshot, &advised);
        if !verifying.is_empty() {
            detectors::wait_for_index_verification(&mut found);
        }
        found.extend(detectors::missing_index(snapshot, &advised.proposed));
        let mut outcome = Outcome {
            found: found.len(),
            published: 0,
        };
        let keys: Vec<String> = found.iter().map(|d| d.key.clone()).collect();
        self.settle().await;
        for detection in found {
            if self.register_and_publish(detection).await {
                outcome.published += 1;
            }
        }
        self.clear_vanished(&snapshot.database_id, &keys).await;
        self.analysed.add(&snapshot.database_id);
        outcome
    }

    /// A session that stopped running its long statement or left its idle transaction is no
    /// longer a problem: its detection is resolved as `cleared` (no cool-down). Only for the
    /// session detectors, whose absence from one snapshot means the state is gone; the others
    /// judge windows, where one quiet cycle proves nothing.
    async fn clear_vanished(&self, database_id: &str, found: &[String]) {
        // Knowledge is asked only while this database may have session detections: on its
        // first snapshot (after a start) and until none is active.
        let found_sessions = found.iter().any(|k| is_session_key(k));
        {
            let mut watch = self.session_watch.lock().await;
            let check = watch.entry(database_id.to_owned()).or_insert(true);
            *check |= found_sessions;
            if !*check {
                return;
            }
        }
        let request = proto::knowledge::DatabaseFilterRequest {
            database_id: database_id.to_owned(),
        };
        let active = match self
            .knowledge
            .call("GetActiveDetections", |mut k| async move {
                k.get_active_detections(request).await
            })
            .await
        {
            Ok(reply) => reply.detections,
            Err(error) => {
                debug!(database_id, %error, "active detections not read; cleared next cycle");
                return;
            }
        };
        let still_active = active
            .iter()
            .any(|d| is_session_key(&d.key) && found.contains(&d.key));
        if !still_active {
            self.session_watch
                .lock()
                .await
                .insert(database_id.to_owned(), false);
        }
        for detection in active {
            if !is_session_key(&detection.key) || found.contains(&detection.key) {
                continue;
            }
            debug!(key = %detection.key, "session state gone; detection cleared");
            let request = ResolveDetectionRequest {
                detection_id: detection.id,
                solution: "the session is no longer in that state".into(),
                reason: Resolution::Cleared.to_string(),
                cooldown_seconds: 0,
            };
            if let Err(error) = self
                .knowledge
                .call("MarkDetectionResolved", |mut k| async move {
                    k.mark_detection_resolved(request).await
                })
                .await
            {
                debug!(key = %detection.key, %error, "not cleared; tried again next cycle");
            }
        }
    }

    async fn register_and_publish(&self, mut detection: Detection) -> bool {
        let request = RegisterDetectionRequest {
            id: String::new(),
            key: detection.key.clone(),
            severity: detection.severity.clone(),
            category: detection.category.clone(),
            database_id: detection.database_id.clone(),
            value: 0.0,
            created_at: detection.timestamp,
            detector_name: detection.detector_name.clone(),
            title: detection.title.clone(),
            description: detection.description.clone(),
            evidence_json: detection.evidence.to_string(),
            recommendation: detection.recommendation.clone(),
            action_type: detection.action_type.clone(),
            action_metadata_json: detection
                .action_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        };
        let reply = match self
            .knowledge
            .call("RegisterDetection", |mut k| async move {
                k.register_detection(request).await
            })
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                // Not registered, not published: the detector fires again next cycle.
                warn!(key = %detection.key, %error, "detection not registered");
                return false;
            }
        };
        match reply.outcome.parse::<RegistrationOutcome>() {
            Ok(RegistrationOutcome::Created) => {}
            outcome => {
                debug!(key = %detection.key, ?outcome, "not new; not published");
                return false;
            }
        }
        detection.id = reply.detection_id;
        match self.deliver(&detection).await {
            Delivery::Published => true,
            Delivery::Withdrawn => false,
            Delivery::Unsettled => {
                self.unsettled.lock().await.push(detection);
                false
            }
        }
    }

    /// Offers the detections left unsettled by earlier cycles again.
    async fn settle(&self) {
        let pending = std::mem::take(&mut *self.unsettled.lock().await);
        for detection in pending {
            if self.deliver(&detection).await == Delivery::Unsettled {
                self.unsettled.lock().await.push(detection);
            }
        }
    }

    /// Publishes a registered detection; when that fails, resolves it without a cool-down so the
    /// next cycle registers and publishes it again instead of it sitting active and unseen.
    async fn deliver(&self, detection: &Detection) -> Delivery {
        let error = match self.publish(detection).await {
            Ok(()) => {
                info!(id = %detection.id, key = %detection.key, severity = %detection.severity, "detection published");
                return Delivery::Published;
            }
            Err(error) => error,
        };
        warn!(key = %detection.key, %error, "detection not published; withdrawn for the next cycle");
        let withdraw = ResolveDetectionRequest {
            detection_id: detection.id.clone(),
            solution: format!("not published: {error}"),
            reason: Resolution::Cleared.to_string(),
            cooldown_seconds: 0,
        };
        match self
            .knowledge
            .call("MarkDetectionResolved", |mut k| async move {
                k.mark_detection_resolved(withdraw).await
            })
            .await
        {
            Ok(_) => Delivery::Withdrawn,
            Err(error) => {
                warn!(key = %detection.key, %error, "unpublished detection not withdrawn; offered again next cycle");
                Delivery::Unsettled
            }
        }
    }

    async fn publish(&self, detection: &Detection) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(detection)?;
        let ack = tokio::time::timeout(
            PUBLISH_DEADLINE,
            self.jetstream
                .publish(proto::subjects::DETECTIONS, payload.into()),
        )
        .await
        .map_err(|_| PublishError::NotAccepted)??;
        tokio::time::timeout(PUBLISH_DEADLINE, ack)
            .await
            .map_err(|_| PublishError::NotAcknowledged)??;
        Ok(())
    }
}

/// A session detector's key: `<db>:idle_transaction:…` or `<db>:long_running_query:…`.
fn is_session_key(key: &str) -> bool {
    key.split(':')
        .nth(1)
        .and_then(|d| d.parse::<Detector>().ok())
        .is_some_and(|d| matches!(d, Detector::IdleTransaction | Detector::LongRunningQuery))
}

/// Creates the detections stream if it does not exist (idempotent).
pub async fn ensure_stream(
    jetstream: &async_nats::jetstream::Context,
) -> Result<(), async_nats::jetstream::context::CreateStreamError> {
    jetstream
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: DETECTIONS_STREAM.into(),
            subjects: vec![proto::subjects::DETECTIONS.into()],
            max_age: proto::subjects::STREAM_MAX_AGE,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use proto::metrics::{MetricSnapshot, PostgresDetail, SessionInfo};

    use super::*;
    use crate::thresholds::Thresholds;

    fn idle_for_an_hour() -> MetricSnapshot {
        MetricSnapshot {
            database_id: "db1".into(),
            postgres: Some(PostgresDetail {
                database_name: "app".into(),
                idle_in_transaction: vec![SessionInfo {
                    pid: 7,
                    database: "app".into(),
                    state: "idle in transaction".into(),
                    duration_secs: 3600.0,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    async fn pipeline(detectors_enabled: bool) -> Pipeline {
        // Nothing listens at either address: the detectors run, registration fails.
        let closed = format!("nats://127.0.0.1:{}", testkit::free_port());
        pipeline_on(detectors_enabled, &closed).await
    }

    /// Knowledge unreachable; NATS at `nats_url`.
    async fn pipeline_on(detectors_enabled: bool, nats_url: &str) -> Pipeline {
        let closed = format!("127.0.0.1:{}", testkit::free_port());
        let knowledge = Knowledge::connect(&closed).unwrap();
        let fallback = Thresholds::from_fallback(
            &crate::config::Config::from_env(&lifecycle::Env::default())
                .unwrap()
                .thresholds,
        );
        let nats = lifecycle::nats::NatsSettings::plain(nats_url.to_owned())
            .connect("analyser")
            .await
            .unwrap();
        Pipeline {
            detectors_enabled,
            thresholds: ThresholdSource::new(knowledge.clone(), fallback),
            advisor: Advisor::new(crate::advisor::planner::Planner::new(knowledge.clone())),
            verifier: std::sync::Arc::new(crate::verification::Verifier::new(
                knowledge.clone(),
                nats.clone(),
            )),
            session_watch: Default::default(),
            knowledge,
            jetstream: async_nats::jetstream::new(nats),
            analysed: Analysed::default(),
            unsettled: Default::default(),
        }
    }

    fn detection() -> Detection {
        Detection {
            id: "det-1".into(),
            key: "db1:idle_transaction:7:123".into(),
            detector_name: Detector::IdleTransaction.as_str().into(),
            database_id: "db1".into(),
            title: "Idle transaction".into(),
            evidence: serde_json::json!({"pid": "7"}),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_published_detection_is_kept_in_the_detections_stream() {
        let nats = testkit::NatsServer::start();
        let pipeline = pipeline_on(true, &nats.url()).await;
        ensure_stream(&pipeline.jetstream).await.unwrap();
        // Idempotent: the analyser creates it at every start.
        ensure_stream(&pipeline.jetstream).await.unwrap();
        pipeline.publish(&detection()).await.unwrap();
        let decoded = last_kept(&pipeline).await;
        assert_eq!(decoded, detection());
    }

    /// The last detection the `DETECTIONS` stream keeps.
    async fn last_kept(pipeline: &Pipeline) -> Detection {
        let kept = pipeline
            .jetstream
            .get_stream(DETECTIONS_STREAM)
            .await
            .unwrap()
            .get_last_raw_message_by_subject(proto::subjects::DETECTIONS)
            .await
            .unwrap();
        serde_json::from_slice(&kept.payload).unwrap()
    }

    #[tokio::test]
    async fn without_the_stream_publishing_fails_so_the_detection_is_withdrawn() {
        // NATS answers but nothing keeps `detections`: JetStream does not acknowledge, which
        // register_and_publish treats as "not published" (withdrawn, published next cycle).
        let nats = testkit::NatsServer::start();
        let pipeline = pipeline_on(true, &nats.url()).await;
        let error = pipeline.publish(&detection()).await.unwrap_err();
        assert!(
            matches!(
                error,
                PublishError::Publish(_) | PublishError::NotAcknowledged
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_detection_neither_published_nor_withdrawn_is_published_once_nats_takes_it() {
        let nats = testkit::NatsServer::start();
        let pipeline = pipeline_on(true, &nats.url()).await;
        // No stream yet and knowledge down: neither published nor withdrawn.
        assert_eq!(pipeline.deliver(&detection()).await, Delivery::Unsettled);
        pipeline.unsettled.lock().await.push(detection());
        pipeline.settle().await;
        assert_eq!(
            pipeline.unsettled.lock().await.len(),
            1,
            "kept for the next cycle"
        );
        // NATS takes it now: the next cycle publishes it, under the id knowledge gave it.
        ensure_stream(&pipeline.jetstream).await.unwrap();
        pipeline.settle().await;
        assert!(pipeline.unsettled.lock().await.is_empty());
        let decoded = last_kept(&pipeline).await;
        assert_eq!(decoded.id, "det-1");
    }

    #[test]
    fn session_keys_are_told_apart_from_the_others() {
        assert!(is_session_key("db1:idle_transaction:7:123"));
        assert!(is_session_key("db1:long_running_query:7:123"));
        assert!(!is_session_key("db1:missing_index:public.posts(user_id)"));
        assert!(!is_session_key("idle_transaction"));
    }

    #[tokio::test]
    async fn enable_all_detectors_false_runs_no_detector() {
        let on = pipeline(true).await.process(&idle_for_an_hour()).await;
        assert_eq!(
            on,
            Outcome {
                found: 1,
                published: 0
            },
            "knowledge is unreachable"
        );
        let off = pipeline(false).await;
        assert_eq!(off.process(&idle_for_an_hour()).await, Outcome::default());
        assert_eq!(off.analysed.of("db1"), 0, "no detector ran");
    }

    #[tokio::test]
    async fn each_snapshot_the_detectors_ran_on_is_counted_per_database() {
        let pipeline = pipeline(true).await;
        let mut other = idle_for_an_hour();
        other.database_id = "db2".into();
        for _ in 0..3 {
            pipeline.process(&idle_for_an_hour()).await;
        }
        pipeline.process(&other).await;
        assert_eq!(pipeline.analysed.of("db1"), 3);
        assert_eq!(pipeline.analysed.of("db3"), 0);
        assert_eq!(
            pipeline.analysed.to_json(),
            serde_json::json!({"db1": 3, "db2": 1})
        );
    }
}
