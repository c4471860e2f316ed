use crate::consultation::{Action, ConsultationStatus};

/// Everything the domain rules can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// An input field failed validation; `field` is the API name of the field.
    #[error("{field}: {message}")]
    Invalid {
        /// Name of the offending field as the API spells it.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The consultation state machine does not allow `action` in state `from`.
    #[error("cannot {action} a consultation that is {from}")]
    Transition {
        /// The state the consultation is in.
        from: ConsultationStatus,
        /// What was attempted.
        action: Action,
    },
}

impl CoreError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}
