//! `cache_optimization_recommendation`: changes nothing; completes with the steps the detection
//! carries (sized by the analyser from the measured RAM and settings), for a person to apply.

use proto::events::Detection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub title: String,
    pub options: Vec<Value>,
}

impl Recommendation {
    pub fn from_detection(detection: &Detection) -> Self {
        let metadata = detection.action_metadata.clone().unwrap_or(Value::Null);
        let options: Vec<Value> = ["safe_option", "advanced_option"]
            .iter()
            .filter_map(|k| metadata.get(*k).cloned())
            .collect();
        Self {
            title: if detection.title.is_empty() {
                "Review the cache configuration".into()
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
