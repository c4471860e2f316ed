//! The load-test engine behind `wakili loadtest` and the dashboard's load tests
//! (`POST /api/v1/performance/load-tests`).
//!
//! For every room it books a consultation over the REST API (as the room's lawyer), joins the
//! client first (into the waiting room), the lawyer `join_interval` later (which admits the
//! client), then any further members (admins) at the same interval, all over Socket.IO with
//! [`wakili_client`]. The lawyer sends each member an offer, each answers; then every member
//! sends an ICE candidate to every other member and a `quality:report` every
//! `message_interval` until the run ends; the clients leave and the lawyer ends the
//! consultation. Rooms start evenly over `ramp_up`; the messaging ends for everyone at
//! `ramp_up + duration`.
//!
//! Signals carry the send time, so the receiver measures delivery latency (same process, same
//! clock). Every failure is counted by kind; a run is clean when [`Report::error_count`] is 0.

mod live;
mod params;
mod run;

pub use live::{Live, Progress, Report, Spread};
pub use params::{Limits, Params};
pub use run::{Identity, run};
