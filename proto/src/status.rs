//! The closed vocabularies carried as strings on the wire: action statuses, execution modes and
//! detection resolutions. Parsing rejects anything else, with the bad value in the error.

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
