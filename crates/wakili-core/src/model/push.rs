//! Mobile push bookkeeping: devices, the notification outbox and scheduled reminders, as stored.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::CoreError;

/// A phone or browser that receives push notifications for its user. Serialized as the API
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct DeviceRegistration {
    /// Opaque id (UUIDv7).
    pub id: String,
    /// Whose device it is.
    pub user_id: String,
    /// The FCM registration token.
    pub token: String,
    /// `ios`, `android` or `web`.
    pub platform: String,
    /// The app's version.
    pub app_version: String,
    /// Preferred locale (BCP 47), if given.
    pub locale: Option<String>,
    /// Whether notifications go to it.
    pub is_active: bool,
    /// Why it stopped receiving notifications (`unregistered`, `invalid_token`, `silent`).
    pub deactivated_reason: Option<String>,
    /// The last registration or heartbeat.
    pub last_seen_at: DateTime<Utc>,
    /// First registered.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Where a device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Apple (APNs through FCM).
    Ios,
    /// Android.
    Android,
    /// A browser (Web Push through FCM).
    Web,
}

named!(Platform, field "platform", "platform" {
    Ios => "ios",
    Android => "android",
    Web => "web",
});

/// Longest FCM registration token accepted (real ones are ~160–250 characters).
pub const MAX_TOKEN_LEN: usize = 4096;

/// A plausible FCM registration token: 1–4096 visible ASCII characters, without `/`, `?` or `#`
/// (it goes into FCM URLs, API paths and logs).
pub fn check_token(token: &str) -> Result<(), CoreError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(CoreError::invalid(
            "token",
            format!("1 to {MAX_TOKEN_LEN} characters"),
        ));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'?' && b != b'#')
    {
        return Err(CoreError::invalid(
            "token",
            "visible ASCII characters only, without '/', '?' or '#'",
        ));
    }
    Ok(())
}

/// A registration to store (upsert by token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Fresh id, used when the token is new.
    pub id: String,
    /// The owner (a token moving to another user moves with it).
    pub user_id: String,
    /// The FCM registration token.
    pub token: String,
    /// `ios`, `android` or `web`.
    pub platform: String,
    /// The app's version.
    pub app_version: String,
    /// Preferred locale.
    pub locale: Option<String>,
}

impl NewDevice {
    /// A registration of `token` for `user_id`, checked the way the API documents it:
    /// - `token`: see [`check_token`];
    /// - `app_version`: 1–64 printable ASCII characters, not starting with a space (trailing
    ///   spaces are dropped);
    /// - `locale`: a BCP 47 tag of up to 35 letters, digits, `-` and `_`; empty means none.
    pub fn new(
        id: String,
        user_id: &str,
        token: String,
        platform: Platform,
        app_version: &str,
        locale: Option<&str>,
    ) -> Result<Self, CoreError> {
        check_token(&token)?;
        let printable = |b: u8| (b' '..=b'~').contains(&b);
        if !(1..=64).contains(&app_version.len())
            || app_version.starts_with(' ')
            || !app_version.bytes().all(printable)
        {
            return Err(CoreError::invalid(
                "appVersion",
                "1 to 64 printable ASCII characters, not starting with a space",
            ));
        }
        let locale = match locale {
            None | Some("") => None,
            Some(l)
                if l.len() <= 35
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                Some(l.to_owned())
            }
            Some(_) => return Err(CoreError::invalid("locale", "a BCP 47 tag such as sw-KE")),
        };
        Ok(Self {
            id,
            user_id: user_id.to_owned(),
            token,
            platform: platform.as_str().to_owned(),
            app_version: app_version.trim_end().to_owned(),
            locale,
        })
    }
}

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its time or for a retry.
    Pending,
    /// Accepted by FCM.
    Sent,
    /// Given up: refused by FCM, device gone, or out of attempts.
    Failed,
    /// Its moment passed before it could be sent (a call that stopped ringing).
    Expired,
}

named!(DeliveryStatus, field "status", "delivery status" {
    Pending => "pending",
    Sent => "sent",
    Failed => "failed",
    Expired => "expired",
});

/// One notification to one device, as the outbox holds it. Serialized (without the device
/// token and the payload) for the admins' delivery list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct OutboxNotification {
    /// Opaque id (UUIDv7, so ids sort by creation).
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// The device's FCM token.
    #[serde(skip)]
    pub device_token: String,
    /// The device's platform.
    pub platform: String,
    /// What it is (`incoming_call`, `call_cancelled`, `reminder`, `consultation_cancelled`, …).
    pub kind: String,
    /// The consultation it is about.
    pub consultation_id: Option<String>,
    /// The notification's content (JSON), turned into an FCM message when sent.
    #[serde(skip)]
    pub payload: String,
    /// Where it is.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub status: DeliveryStatus,
    /// Send attempts so far.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub attempts: u32,
    /// When it is (next) due.
    pub next_attempt_at: DateTime<Utc>,
    /// Not sent after this instant (calls).
    pub expires_at: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
    /// FCM's name for the accepted message.
    pub message_name: Option<String>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Accepted by FCM.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A notification to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// Fresh id.
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// The device's FCM token.
    pub device_token: String,
    /// The device's platform.
    pub platform: String,
    /// What it is.
    pub kind: String,
    /// The consultation it is about.
    pub consultation_id: Option<String>,
    /// Content (JSON).
    pub payload: String,
    /// Not before.
    pub due_at: DateTime<Utc>,
    /// Not after.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only about this consultation.
    pub consultation_id: Option<String>,
    /// Only to this user.
    pub user_id: Option<String>,
    /// Only ids below this one (the previous page's last id).
    pub before: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// A reminder due at some instant, as a worker leased it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct DueReminder {
    /// Row id.
    pub id: String,
    /// The consultation.
    pub consultation_id: String,
    /// How long before the consultation it fires.
    pub offset_seconds: i64,
    /// When.
    pub due_at: DateTime<Utc>,
}

/// The newest call notification of a consultation (ringing or its cancellation).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct CallState {
    /// `incoming_call` or `call_cancelled`.
    pub kind: String,
    /// Whose devices it went to.
    pub user_id: String,
    /// Stops ringing by itself at this instant.
    pub expires_at: Option<DateTime<Utc>>,
}
