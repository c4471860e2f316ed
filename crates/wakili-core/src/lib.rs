//! Sans-IO domain logic for Wakili.
//!
//! Nothing in this crate reads the clock, touches a socket or a file: callers pass `now` in and get
//! decisions out, so every rule here is unit-tested at simulated speed. [`Clock`] is the type the
//! services around it read "now" from.

pub mod clock;
pub mod consultation;
pub mod delivery;
mod error;
pub mod ids;
pub mod json;
pub mod model;
pub mod notification;
pub mod notify;
pub mod page;
pub mod quality;
pub mod quality_timeline;
pub mod recording;
pub mod role;
pub mod room;
pub mod turn;
pub mod version;
pub mod webrtc;

pub use clock::Clock;
pub use error::CoreError;
pub use ids::{ConsultationId, UserId, new_id};
pub use role::{Caller, Role};

/// `TryFrom<String>` through `FromStr`, for the enums stored by name: the database decodes them
/// with it (`sqlx(try_from = "String")`), and an unknown name is an error, never a default.
macro_rules! stored_by_name {
    ($($name:ty),+ $(,)?) => {
        $(impl TryFrom<String> for $name {
            type Error = <$name as std::str::FromStr>::Err;

            fn try_from(name: String) -> Result<Self, Self::Error> {
                name.parse()
            }
        })+
    };
}

stored_by_name!(
    Role,
    consultation::ConsultationStatus,
    recording::RecordingStatus,
    quality::Level,
    model::ChunkState,
    model::push::DeliveryStatus,
);
