//! Delivering a relayed signal to its addressee: straight to its socket when it is connected to
//! this node, as one `PUBLISH` to the node holding it otherwise (see `store/redis_rooms.rs`),
//! and to the participant's Socket.IO room when neither is known to work (a node that is gone,
//! a connection recorded before node ids).

use serde_json::value::RawValue;
use socketioxide::{SocketIo, adapter::Adapter};

use super::{Hub, emit_event, participant_room};
use crate::{
    protocol::{ServerEvent, SignalOut},
    store::{NodeMessage, Relayed},
};

impl Hub {
    /// Sends `out` to participant `to`, served by `connection` (`<node>/<socket id>`).
    pub(super) async fn relay<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        connection: &str,
        to: &str,
        out: &SignalOut<'_>,
    ) {
        let (node, sid) = connection.split_once('/').unwrap_or(("", connection));
        if node == self.node {
            if let Some(socket) = sid.parse().ok().and_then(|sid| io.get_socket(sid)) {
                if let Err(e) = socket.emit(out.name(), out) {
                    tracing::debug!(error = %e, "signal not delivered");
                }
                return;
            }
        } else if !node.is_empty() {
            match NodeMessage::event(sid, to, out.name(), out) {
                Ok(message) => match self.store.send(node, message).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "relaying a signal to its node failed"),
                },
                Err(e) => tracing::warn!(error = %e, "signal not encoded"),
            }
        }
        emit_event(io, participant_room(to), out).await;
    }
}

/// Hands an event another node relayed to its socket here, on the change feed's task; a socket
/// that is gone meanwhile (its participant resumed elsewhere) is reached through its
/// participant's room.
pub(super) fn deliver<A: Adapter>(io: &SocketIo<A>, event: Relayed<'_>) {
    if let Some(socket) = event.sid.parse().ok().and_then(|sid| io.get_socket(sid)) {
        if let Err(e) = socket.emit(event.event, event.payload) {
            tracing::debug!(event = event.event, error = %e, "relayed event not delivered");
        }
        return;
    }
    let (io, room, name) = (
        io.clone(),
        participant_room(event.participant),
        event.event.to_owned(),
    );
    let payload: Box<RawValue> = event.payload.to_owned();
    tokio::spawn(async move {
        if let Err(e) = io.to(room).emit(name.clone(), &payload).await {
            tracing::debug!(event = name, error = %e, "relayed event not delivered");
        }
    });
}
