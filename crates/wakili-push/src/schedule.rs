//! When a consultation's reminders are due: the sans-IO rules now live in
//! [`wakili_core::notify`] with the other notification rules; kept here under their old path.

pub use wakili_core::notify::{lead_time, reminders};
