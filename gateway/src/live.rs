//! What arrives on NATS, for the browser: a bounded metric history per database (for charts and
//! `/metrics/latest`) without the statements, which go to their own history (`statements`, for
//! `/queries`), and every event — metrics, detections, action status — broadcast to the
//! server-sent-event streams and the webhooks. The history is the only state the gateway keeps
//! itself; everything durable is in knowledge.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use lifecycle::Shutdown;
use proto::subjects;
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::warn;

use crate::statements::StatementHistory;

/// One event for the browser: its SSE name and its JSON.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: &'static str,
    pub data: Value,
}

/// Databases whose history is kept: beyond it, the one heard from least recently is forgotten
/// (whoever can publish on NATS must not grow the gateway without bound).
const MAX_DATABASES: usize = 1000;

pub struct Live {
    history: Mutex<HashMap<String, VecDeque<Value>>>,
    points: usize,
    pub statements: Mutex<StatementHistory>,
    events: broadcast::Sender<Event>,
    pub received: AtomicU64,
}

impl Live {
    pub fn new(points: usize) -> Self {
        Self {
            history: Mutex::new(HashMap::new()),
            points: points.max(1),
            statements: Mutex::new(StatementHistory::default()),
            events: broadcast::channel(1024).0,
            received: AtomicU64::new(0),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Sends an event to every open stream (and the webhooks).
    pub fn publish(&self, kind: &'static str, data: Value) {
        let _ = self.events.send(Event { kind, data });
    }

    /// The newest snapshot of `database_id`, or of any database when empty.
    pub fn latest(&self, database_id: &str) -> Option<Value> {
        let history = self.history.lock().expect("history lock");
        if database_id.is_empty() {
            history
                .values()
                .filter_map(|h| h.back())
                .max_by_key(|m| m["timestamp"].as_i64().unwrap_or(0))
                .cloned()
        } else {
            history.get(database_id).and_then(|h| h.back().cloned())
        }
    }

    /// Up to `limit` snapshots of `database_id`, oldest first.
    pub fn history(&self, database_id: &str, limit: usize) -> Vec<Value> {
        let history = self.history.lock().expect("history lock");
        history
            .get(database_id)
            .map(|h| {
                h.iter()
                    .skip(h.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each database's newest health score.
    pub fn latest_health(&self) -> Vec<(String, f64)> {
        let history = self.history.lock().expect("history lock");
        let mut out: Vec<(String, f64)> = history
            .iter()
            .filter_map(|(id, h)| Some((id.clone(), h.back()?["health_score"].as_f64()?)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn databases_seen(&self) -> usize {
        self.history.lock().expect("history lock").len()
    }

    /// Keeps the event in the metric history and its statements in theirs; returns the event
    /// without its statements, as `/metrics/*` and `/events` serve it.
    fn remember(&self, mut metrics: Value) -> Value {
        self.statements
            .lock()
            .expect("statements lock")
            .record(&metrics);
        if let Some(fields) = metrics.as_object_mut() {
            fields.remove("top_statements");
        }
        let Some(id) = metrics["database_id"].as_str() else {
            return metrics;
        };
        let mut history = self.history.lock().expect("history lock");
        if !history.contains_key(id) && history.len() >= MAX_DATABASES {
            let stalest = history
                .iter()
                .min_by_key(|(_, h)| h.back().and_then(|m| m["timestamp"].as_i64()))
                .map(|(k, _)| k.clone());
            if let Some(stalest) = stalest {
                history.remove(&stalest);
            }
        }
        let points = history.entry(id.to_owned()).or_default();
        points.push_back(metrics.clone());
        while points.len() > self.points {
            points.pop_front();
        }
        drop(history);
        metrics
    }

    /// Follows `metrics`, `detections` and `actions.status` until shutdown (the client
    /// reconnects by itself).
    pub async fn follow(&self, nats: async_nats::Client, shutdown: Shutdown) {
        let subscribe = |subject: &'static str| {
            let nats = nats.clone();
            async move { nats.subscribe(subject).await }
        };
        let (metrics, detections, actions) = match tokio::try_join!(
            subscribe(subjects::METRICS),
            subscribe(subjects::DETECTIONS),
            subscribe(subjects::ACTIONS_STATUS),
        ) {
            Ok(subscriptions) => subscriptions,
            Err(error) => {
                warn!(%error, "cannot subscribe to NATS; no live updates");
                return;
            }
        };
        let mut all = futures::stream::select_all([metrics, detections, actions]);
        loop {
            let message = tokio::select! {
                () = shutdown.wait() => return,
                message = all.next() => match message { Some(m) => m, None => return },
            };
            let Ok(data) = serde_json::from_slice::<Value>(&message.payload) else {
                warn!(subject = %message.subject, "malformed message ignored");
                continue;
            };
            if !data.is_object() {
                continue;
            }
            self.received.fetch_add(1, Ordering::Relaxed);
            let (kind, data) = match message.subject.as_str() {
                subjects::METRICS => ("metrics", self.remember(data)),
                subjects::DETECTIONS => ("detection", data),
                _ => ("action", data),
            };
            self.publish(kind, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn history_is_bounded_per_database_and_latest_is_the_newest() {
        let live = Live::new(3);
        for t in 1..=5 {
            live.remember(json!({"database_id": "a", "timestamp": t}));
        }
        live.remember(json!({"database_id": "b", "timestamp": 9}));
        let a: Vec<i64> = live
            .history("a", 10)
            .iter()
            .map(|m| m["timestamp"].as_i64().unwrap())
            .collect();
        assert_eq!(a, [3, 4, 5]);
        assert_eq!(live.history("a", 2).len(), 2);
        assert_eq!(live.latest("a").unwrap()["timestamp"], 5);
        assert_eq!(live.latest("").unwrap()["database_id"], "b");
        assert!(live.latest("nope").is_none());
    }

    #[test]
    fn the_number_of_databases_kept_is_bounded_and_the_stalest_goes_first() {
        let live = Live::new(2);
        for n in 0..MAX_DATABASES {
            live.remember(json!({"database_id": format!("db{n}"), "timestamp": n + 10}));
        }
        live.remember(json!({"database_id": "db0", "timestamp": 99_999}));
        live.remember(json!({"database_id": "newcomer", "timestamp": 100_000}));
        assert_eq!(live.databases_seen(), MAX_DATABASES);
        assert!(live.latest("newcomer").is_some());
        assert!(live.latest("db0").is_some(), "heard from recently: kept");
        assert!(live.latest("db1").is_none(), "the stalest is forgotten");
    }
}
