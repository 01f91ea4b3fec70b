//! The closed vocabularies carried as strings on the wire: action types and statuses, execution
//! modes, detection resolutions, detectors, severities and categories, and verification's ledger
//! states. Parsing rejects anything else, with the bad value in the error; no service matches on
//! these words as strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not one of a vocabulary's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub vocabulary: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected one of: {})",
            self.vocabulary,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(UnknownWord { vocabulary: $what, value: other.to_owned(), expected: Self::WORDS }),
                }
            }
        }
    };
}

vocabulary!(
    /// The life of an action, as the original named it.
    ActionStatus, "action status", {
        Queued => "queued",
        /// Observe mode: shown, never executed.
        Suggested => "suggested",
        PendingApproval => "pending_approval",
        Approved => "approved",
        Rejected => "rejected",
        Executing => "executing",
        Completed => "completed",
        Failed => "failed",
        PendingImplementation => "pending_implementation",
        RolledBack => "rolled_back",
    }
);

impl ActionStatus {
    /// Still waiting to run or running: a second action for the same detection must not start.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Self::Queued | Self::PendingApproval | Self::Approved | Self::Executing
        )
    }

    /// The fix did not happen or was undone, so the detection is resolved with a cool-down.
    pub fn resolution(self) -> Option<Resolution> {
        match self {
            Self::Failed => Some(Resolution::ActionFailed),
            Self::Rejected => Some(Resolution::ActionRejected),
            Self::RolledBack => Some(Resolution::RolledBack),
            _ => None,
        }
    }
}

vocabulary!(
    /// How the executor treats a new detection.
    ExecutionMode, "execution mode", {
        Autonomous => "autonomous",
        Approval => "approval",
        Observe => "observe",
    }
);

vocabulary!(
    /// Why a detection stopped being active.
    Resolution, "resolution", {
        /// The action completed and needs no verification.
        Fixed => "fixed",
        /// Verification measured an improvement.
        Verified => "verified",
        ActionFailed => "action_failed",
        ActionRejected => "action_rejected",
        RolledBack => "rolled_back",
        /// Verification measured no meaningful change.
        NoEffect => "no_effect",
        /// The problem went away by itself.
        Cleared => "cleared",
    }
);

impl Resolution {
    /// The problem is still there: wait before proposing the same fix again.
    pub fn starts_cooldown(self) -> bool {
        matches!(
            self,
            Self::ActionFailed | Self::ActionRejected | Self::RolledBack | Self::NoEffect
        )
    }
}

vocabulary!(
    /// What an action does. Adding one: a word here, a plan in the executor's `Plan`, a result in
    /// `proto::actions` — the compiler then points at every `match` that must learn it.
    ActionType, "action type", {
        CreateIndex => "create_index",
        VacuumTable => "vacuum_table",
        TerminateQuery => "terminate_query",
        CacheRecommendation => "cache_optimization_recommendation",
        ConnectionRecommendation => "connection_recommendation",
        DeployConnectionPooler => "deploy_connection_pooler",
        TuneConfigHighLatency => "tune_config_high_latency",
        SetRoleTimeout => "set_role_timeout",
        DeployRedis => "deploy_redis",
    }
);

vocabulary!(
    /// The detectors, with the original's names.
    Detector, "detector", {
        MissingIndex => "missing_index",
        TableBloat => "table_bloat",
        CacheMissRateHigh => "cache_miss_rate_high",
        ConnectionPoolExhaustion => "connection_pool_exhaustion",
        HighQueryLatency => "high_query_latency",
        LongRunningQuery => "long_running_query",
        IdleTransaction => "idle_transaction",
    }
);

vocabulary!(
    /// How bad a detection is.
    Severity, "severity", {
        Info => "info",
        Warning => "warning",
        Critical => "critical",
    }
);

vocabulary!(
    /// What part of the database a detection is about.
    Category, "category", {
        Query => "query",
        Connection => "connection",
        Cache => "cache",
        Storage => "storage",
        Configuration => "configuration",
    }
);

vocabulary!(
    /// Whether a detection is still a problem (`knowledge.Detection.state`).
    DetectionState, "detection state", {
        Active => "active",
        Resolved => "resolved",
    }
);

vocabulary!(
    /// A monitored database's health as the collector last reported it.
    DatabaseStatus, "database status", {
        /// Nothing reported yet.
        Unknown => "unknown",
        Healthy => "healthy",
        Degraded => "degraded",
        Offline => "offline",
        Unreachable => "unreachable",
    }
);

vocabulary!(
    /// What knowledge did with a registered detection (`DetectionResponse.outcome`).
    RegistrationOutcome, "registration outcome", {
        /// New: publish it.
        Created => "created",
        /// Its key is already active.
        Duplicate => "duplicate",
        /// Its key's last fix failed, was rejected or rolled back: not again yet.
        CoolingDown => "cooling_down",
    }
);

vocabulary!(
    /// What an operator may decide about an action (the last segment of
    /// `POST /actions/{id}/{decision}`).
    OperatorDecision, "decision", {
        Approve => "approve",
        Reject => "reject",
        Rollback => "rollback",
    }
);

vocabulary!(
    /// Where verification stands on a completed action (`LedgerEntry.state`).
    LedgerState, "ledger state", {
        /// Still measuring.
        Verifying => "verifying",
        /// Measured faster: the change stays.
        Kept => "kept",
        /// Measured worse: undone.
        RolledBack => "rolled_back",
        /// Measured no meaningful change.
        NoEffect => "no_effect",
        /// Too few calls to judge by the time limit: the change stays.
        NotJudged => "not_judged",
    }
);

impl LedgerState {
    /// Verification has decided.
    pub fn is_final(self) -> bool {
        self != Self::Verifying
    }

    /// How the detection is resolved once this is decided (`None` while verifying).
    pub fn resolution(self) -> Option<Resolution> {
        match self {
            Self::Verifying => None,
            Self::Kept => Some(Resolution::Verified),
            // Not measured either way: the change stays, the problem counts as fixed.
            Self::NotJudged => Some(Resolution::Fixed),
            Self::RolledBack => Some(Resolution::RolledBack),
            Self::NoEffect => Some(Resolution::NoEffect),
        }
    }
}

/// The typed view of the vocabulary fields of the generated knowledge messages; a stored word
/// that is not in the vocabulary is an error naming it, never a silent default.
impl crate::knowledge::Action {
    pub fn parsed_status(&self) -> Result<ActionStatus, UnknownWord> {
        self.status.parse()
    }

    pub fn parsed_action_type(&self) -> Result<ActionType, UnknownWord> {
        self.action_type.parse()
    }
}

impl crate::knowledge::LedgerEntry {
    pub fn parsed_state(&self) -> Result<LedgerState, UnknownWord> {
        self.state.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_through_parse_and_display() {
        for status in ActionStatus::ALL {
            assert_eq!(status.as_str().parse::<ActionStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_string(status).unwrap(),
                format!("\"{status}\"")
            );
        }
        for mode in ExecutionMode::ALL {
            assert_eq!(mode.to_string().parse::<ExecutionMode>(), Ok(*mode));
        }
        for kind in ActionType::ALL {
            assert_eq!(kind.as_str().parse::<ActionType>(), Ok(*kind));
            assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{kind}\""));
        }
        for detector in Detector::ALL {
            assert_eq!(detector.as_str().parse::<Detector>(), Ok(*detector));
        }
        for state in LedgerState::ALL {
            assert_eq!(state.as_str().parse::<LedgerState>(), Ok(*state));
        }
        assert_eq!("critical".parse::<Severity>(), Ok(Severity::Critical));
        assert_eq!("storage".parse::<Category>(), Ok(Category::Storage));
    }

    #[test]
    fn unknown_word_names_the_value_and_the_choices() {
        let error = "finished".parse::<ActionStatus>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"finished\""), "{message}");
        assert!(message.contains("pending_approval"), "{message}");
    }

    #[test]
    fn only_failure_like_outcomes_cool_down() {
        assert_eq!(
            ActionStatus::Rejected.resolution(),
            Some(Resolution::ActionRejected)
        );
        assert_eq!(ActionStatus::Completed.resolution(), None);
        assert!(Resolution::RolledBack.starts_cooldown());
        assert!(!Resolution::Verified.starts_cooldown());
    }
}
