//! Webhooks: the events of spec 8.2 (`detection.created`, `action.queued`, `action.completed`,
//! `action.failed`, `action.rolledback`) posted to the configured URL — Slack and Discord get
//! their own message formats, anything else `{event, timestamp, data}` — with an HMAC-SHA256
//! signature of the body (`X-StartupMonkey-Signature: sha256=<hex>`, keyed with the gateway
//! token), a 5 s timeout and three retries with backoff. Loopback, private and link-local
//! addresses are refused unless `WEBHOOK_ALLOW_PRIVATE=true` (a webhook must not become a way
//! into the internal network). The configuration is read from knowledge every 30 s.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lifecycle::Shutdown;
use proto::clients::Knowledge;
use proto::knowledge::WebhookConfig;
use proto::status::ActionStatus;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tracing::{info, warn};

use crate::auth::Auth;
use crate::live::{Event, Live};

const REFRESH: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: u32 = 4;

pub struct Webhooks {
    config: RwLock<Option<WebhookConfig>>,
    knowledge: Knowledge,
    client: reqwest::Client,
    auth: Arc<Auth>,
    allow_private: bool,
}

impl Webhooks {
    pub fn new(knowledge: Knowledge, auth: Arc<Auth>, allow_private: bool) -> Self {
        Self {
            config: RwLock::new(None),
            knowledge: knowledge.with_deadline(TIMEOUT),
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            auth,
            allow_private,
        }
    }

    /// Reads the configuration again now (after it was saved).
    pub async fn refresh(&self) {
        match self.knowledge.system_config().await {
            Ok(config) => *self.config.write().await = config.webhook,
            Err(error) => warn!(%error, "webhook configuration not read; the last one stays"),
        }
    }

    /// Delivers events until shutdown.
    pub async fn run(self: Arc<Self>, live: Arc<Live>, shutdown: Shutdown) {
        let mut events = live.subscribe();
        let mut refresh = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = refresh.tick() => self.refresh().await,
                event = events.recv() => match event {
                    Ok(event) => {
                        if let Some(name) = event_name(&event) {
                            let hooks = self.clone();
                            tokio::spawn(async move { hooks.deliver(name, event.data).await });
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        warn!(missed = n, "webhooks fell behind; events skipped");
                    }
                    Err(_) => return,
                },
            }
        }
    }

    async fn deliver(&self, event: WebhookEvent, data: Value) {
        let name = event.as_str();
        let Some(config) = self.config.read().await.clone() else {
            return;
        };
        if !config.enabled || config.url.is_empty() || !config.events.iter().any(|e| e == name) {
            return;
        }
        if let Err(why) = check_url(&config.url, self.allow_private).await {
            warn!(event = name, %why, "webhook not sent");
            return;
        }
        let body = format_body(&config.url, event, &data).to_string();
        let signature = format!("sha256={}", self.auth.sign(body.as_bytes()));
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            let mut request = self
                .client
                .post(&config.url)
                .header("content-type", "application/json")
                .header("x-startupmonkey-event", name)
                .header("x-startupmonkey-signature", &signature)
                .body(body.clone());
            if !config.auth_header.is_empty() {
                request = request.header("authorization", &config.auth_header);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    info!(event = name, attempt, "webhook delivered");
                    return;
                }
                Ok(response) => {
                    warn!(event = name, attempt, status = %response.status(), "webhook refused")
                }
                Err(error) => {
                    warn!(event = name, attempt, error = %error.without_url(), "webhook failed")
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

/// The events a webhook may be configured for (spec 8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    DetectionCreated,
    ActionQueued,
    ActionCompleted,
    ActionFailed,
    ActionRolledBack,
}

impl WebhookEvent {
    /// The name in the configuration's `events` and the `X-StartupMonkey-Event` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DetectionCreated => "detection.created",
            Self::ActionQueued => "action.queued",
            Self::ActionCompleted => "action.completed",
            Self::ActionFailed => "action.failed",
            Self::ActionRolledBack => "action.rolledback",
        }
    }
}

/// The webhook event an SSE event is, if any.
fn event_name(event: &Event) -> Option<WebhookEvent> {
    match event.kind {
        "detection" => Some(WebhookEvent::DetectionCreated),
        "action" => match event.data["status"].as_str()?.parse().ok()? {
            ActionStatus::Queued => Some(WebhookEvent::ActionQueued),
            ActionStatus::Completed => Some(WebhookEvent::ActionCompleted),
            ActionStatus::Failed => Some(WebhookEvent::ActionFailed),
            ActionStatus::RolledBack => Some(WebhookEvent::ActionRolledBack),
            _ => None,
        },
        _ => None,
    }
}

/// Slack, Discord or plain JSON, by the URL.
pub fn format_body(url: &str, event: WebhookEvent, data: &Value) -> Value {
    let name = event.as_str();
    let title = data["title"]
        .as_str()
        .or(data["message"].as_str())
        .unwrap_or(name);
    let database = data["database_id"].as_str().unwrap_or("");
    if url.contains("hooks.slack.com") {
        json!({"text": format!("*StartupMonkey: {name}*\n{title} (database {database})")})
    } else if url.contains("discord.com/api/webhooks") {
        let colour = match event {
            WebhookEvent::ActionFailed => 0xE5_484D,
            WebhookEvent::ActionCompleted => 0x30_A46C,
            _ => 0x00_90FF,
        };
        json!({"embeds": [{
            "title": format!("StartupMonkey: {name}"),
            "description": title,
            "color": colour,
            "fields": [
                {"name": "Database", "value": database, "inline": true},
                {"name": "Type", "value": data["action_type"].as_str().or(data["detector_name"].as_str()).unwrap_or(""), "inline": true},
                {"name": "Status", "value": data["status"].as_str().or(data["severity"].as_str()).unwrap_or(""), "inline": true},
            ],
        }]})
    } else {
        json!({"event": name, "timestamp": proto::events::rfc3339(unix_now()), "data": data})
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Why a webhook URL is not used.
#[derive(Debug, thiserror::Error)]
pub enum UrlRefused {
    #[error("invalid URL: {0}")]
    Invalid(#[from] url::ParseError),
    #[error("scheme {0} is not http or https")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error(
        "{host} resolves to {address} (loopback/private); set WEBHOOK_ALLOW_PRIVATE=true to allow it"
    )]
    Private { host: String, address: IpAddr },
}

/// A webhook URL must be http(s) and, unless allowed, resolve only to public addresses.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), UrlRefused> {
    let parsed = url::Url::parse(url)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme(parsed.scheme().to_owned()));
    }
    let host = parsed.host_str().ok_or(UrlRefused::NoHost)?.to_owned();
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|source| UrlRefused::Resolve {
            host: host.clone(),
            source,
        })?;
    for address in addresses {
        if is_private(address.ip()) {
            return Err(UrlRefused::Private {
                host: host.clone(),
                address: address.ip(),
            });
        }
    }
    Ok(())
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/x",
            "http://10.1.2.3/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/x",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url}");
            assert!(check_url(url, true).await.is_ok(), "{url}");
        }
        assert!(check_url("ftp://example.com/x", true).await.is_err());
        assert!(check_url("not a url", true).await.is_err());
    }

    #[test]
    fn action_events_are_named_by_their_status() {
        let action = |status: &str| Event {
            kind: "action",
            data: json!({"status": status}),
        };
        assert_eq!(
            event_name(&action("completed")),
            Some(WebhookEvent::ActionCompleted)
        );
        assert_eq!(
            event_name(&action("rolled_back")).map(WebhookEvent::as_str),
            Some("action.rolledback")
        );
        assert_eq!(event_name(&action("executing")), None);
        assert_eq!(event_name(&action("finished")), None, "not a status");
    }

    #[test]
    fn slack_discord_and_plain_formats() {
        let data = json!({"title": "Missing index", "database_id": "db1", "severity": "warning"});
        let slack = format_body(
            "https://hooks.slack.com/services/x",
            WebhookEvent::DetectionCreated,
            &data,
        );
        assert!(slack["text"].as_str().unwrap().contains("Missing index"));
        let discord = format_body(
            "https://discord.com/api/webhooks/1/x",
            WebhookEvent::ActionFailed,
            &data,
        );
        assert_eq!(discord["embeds"][0]["color"], 0xE5_484D);
        let plain = format_body(
            "https://example.com/hook",
            WebhookEvent::DetectionCreated,
            &data,
        );
        assert_eq!(plain["event"], "detection.created");
        assert_eq!(plain["data"]["database_id"], "db1");
    }
}
