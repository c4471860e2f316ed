//! Wakili's signaling. So far: where consultation rooms live ([`RoomStore`]) — in this process's
//! memory on a single node, in Redis when several nodes share rooms.

mod store;

pub use store::{RoomStore, SignalError};
