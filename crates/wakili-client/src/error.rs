use std::time::Duration;

/// Everything that can go wrong talking to a Wakili signaling server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not `http://host:port[/prefix]` or `ws://host:port[/prefix]`.
    #[error("invalid server URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TCP connection could not be opened.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The WebSocket handshake or the WebSocket connection failed.
    #[error("WebSocket: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server sent something that is not Engine.IO v4 / Socket.IO v5 as this client knows it.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server refused the Socket.IO connection (CONNECT_ERROR); Wakili says `unauthorized`
    /// for a missing, malformed, expired or wrongly signed token.
    #[error("connection refused by the server: {0}")]
    Refused(String),
    /// Connecting (TCP, WebSocket, Engine.IO open, Socket.IO CONNECT) took longer than allowed.
    #[error("no Socket.IO connection within {0:?}")]
    ConnectTimeout(Duration),
    /// No acknowledgement, or no awaited event, arrived in time.
    #[error("no answer to {event:?} within {after:?}")]
    Timeout {
        /// The event that was sent or awaited.
        event: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The connection is closed (by [`Client::close`](crate::Client::close), the server, or the
    /// network).
    #[error("the connection is closed")]
    Closed,
    /// The server acknowledged with `{ok: false, error: {code, message}}`.
    #[error("rejected: {code}: {message}")]
    Rejected {
        /// The error code, e.g. `forbidden` (see docs/signaling.md).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// A payload could not be serialized, or an answer did not have the expected shape.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        match e {
            tokio_tungstenite::tungstenite::Error::ConnectionClosed
            | tokio_tungstenite::tungstenite::Error::AlreadyClosed => Self::Closed,
            other => Self::WebSocket(Box::new(other)),
        }
    }
}
