//! `cache_optimization_recommendation` and `connection_recommendation`: change nothing; complete
//! with the steps the detection carries (sized by the analyser from the measured RAM, settings and
//! connections), for a person to apply.

use proto::events::Detection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a recommendation is about: its action type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// Plans stored before topics existed were all about the cache.
    #[default]
    Cache,
    Connections,
}

impl Topic {
    pub fn action_type(self) -> &'static str {
        match self {
            Topic::Cache => "cache_optimization_recommendation",
            Topic::Connections => "connection_recommendation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    #[serde(default)]
    pub topic: Topic,
    pub title: String,
    pub options: Vec<Value>,
}

impl Recommendation {
    pub fn from_detection(topic: Topic, detection: &Detection) -> Self {
        let metadata = detection.action_metadata.clone().unwrap_or(Value::Null);
        let options: Vec<Value> = ["safe_option", "advanced_option"]
            .iter()
            .filter_map(|k| metadata.get(*k).cloned())
            .collect();
        Self {
            topic,
            title: if detection.title.is_empty() {
                "Review the configuration".into()
            } else {
                detection.title.clone()
            },
            options,
        }
    }

    pub fn execute(&self) -> Value {
        json!({
            "recommendation": true,
            "title": self.title,
            "options": self.options,
            "note": "Nothing was changed: these steps need a person (a restart or a code change).",
        })
    }
}
