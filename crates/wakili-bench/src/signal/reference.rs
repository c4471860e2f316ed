//! The reference relay: the least a socketioxide server must do to carry the benchmark's load.
//!
//! Any token is accepted; `consultation:join` acknowledges `{ok, participantId}` with the
//! socket id as the participant id; `signal {to, type, payload}` is relayed to socket `to` as
//! `signal {from, type, payload}`, the payload unparsed (`RawValue`). No rooms, no checks, no
//! database: what Wakili does beyond this is what the comparison prices. Handlers are registered
//! in the connect middleware, before the CONNECT ack, so no join is lost (DEVELOPERS.md).

use std::{convert::Infallible, io::Write};

use anyhow::Context;
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
    socket::Sid,
};

use crate::cli::ReferenceServerArgs;

/// Printed on stdout once listening, followed by the address.
pub const LISTENING: &str = "listening on ";

#[derive(Deserialize)]
struct SignalIn {
    to: String,
    #[serde(rename = "type")]
    kind: String,
    payload: Box<RawValue>,
}

#[derive(Serialize)]
struct SignalOut<'a> {
    from: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    payload: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Joined {
    ok: bool,
    participant_id: String,
    waiting: bool,
}

async fn admit(socket: SocketRef) -> Result<(), Infallible> {
    socket.on(
        "consultation:join",
        async |socket: SocketRef, ack: AckSender| {
            let _ = ack.send(&Joined {
                ok: true,
                participant_id: socket.id.to_string(),
                waiting: false,
            });
        },
    );
    socket.on(
        "signal",
        async |socket: SocketRef, io: SocketIo, Data(signal): Data<SignalIn>| {
            let Ok(to) = signal.to.parse::<Sid>() else {
                return;
            };
            if let Some(peer) = io.get_socket(to) {
                let from = socket.id.to_string();
                // A full buffer drops the signal: the benchmark counts it as lost.
                let _ = peer.emit(
                    "signal",
                    &SignalOut {
                        from: &from,
                        kind: &signal.kind,
                        payload: &signal.payload,
                    },
                );
            }
        },
    );
    Ok(())
}

/// Runs the reference relay until killed.
pub fn serve(args: &ReferenceServerArgs) -> anyhow::Result<bool> {
    super::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (layer, io) = SocketIo::builder().build_layer();
        io.ns("/", (async || {}).with(admit));
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(async || "ok"))
            .layer(layer);
        // Wakili's listen backlog, so that neither drops a storm's connections the other queues.
        let backlog = wakili_settings::HttpSettings::default().listen_backlog;
        let listener = wakili_net::listen(args.listen, backlog)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{LISTENING}{address}")?;
        stdout.flush()?;
        // TCP_NODELAY, as Wakili sets it: otherwise small frames wait for Nagle × the
        // client's delayed ACK (~40 ms) and the reference would not be the floor.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        Ok(true)
    })
}
