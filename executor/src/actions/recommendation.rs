//! `cache_optimization_recommendation` and `connection_recommendation`: change nothing; complete
//! with the steps the detection carries (sized by the analyser from the measured RAM, settings and
//! connections), for a person to apply.

use proto::actions::{Recommendation, Recommended, Topic};
use proto::events::Detection;
use serde_json::Value;

/// A recommendation as the executor makes and completes it.
pub trait RecommendationRun {
    fn from_detection(topic: Topic, detection: &Detection) -> Self;
    fn execute(&self) -> Recommended;
}

impl RecommendationRun for Recommendation {
    fn from_detection(topic: Topic, detection: &Detection) -> Self {
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

    fn execute(&self) -> Recommended {
        Recommended {
            recommendation: true,
            title: self.title.clone(),
            options: self.options.clone(),
            note: "Nothing was changed: these steps need a person (a restart or a code change)."
                .into(),
        }
    }
}
