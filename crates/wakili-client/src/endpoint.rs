//! From the server's base URL to the TCP address and the Socket.IO WebSocket URL.

use crate::ClientError;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host:port` for the TCP connection.
    pub address: String,
    /// `ws://host:port/prefix/socket.io/?EIO=4&transport=websocket`.
    pub url: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]` or `ws://…` (port 80 when absent).
    pub fn parse(base_url: &str) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::Url {
            url: base_url.to_owned(),
            reason,
        };
        let trimmed = base_url.trim();
        let lower = trimmed.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") || lower.starts_with("ws://") {
            trimmed
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or_default()
        } else if lower.starts_with("https://") || lower.starts_with("wss://") {
            return Err(bad(
                "TLS is not supported by this client; use the plain http:// address",
            ));
        } else {
            return Err(bad("expected http://host:port or ws://host:port"));
        };
        if rest.contains(['?', '#']) {
            return Err(bad("a base URL takes no query or fragment"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected a host (and no user info)"));
        }
        let has_port = match authority.rfind(']') {
            // [v6]:port
            Some(close) => authority[close..].contains(':'),
            None => authority.contains(':'),
        };
        if has_port {
            let port = authority.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
            if port.parse::<u16>().is_err() {
                return Err(bad("the port is not a number from 0 to 65535"));
            }
        }
        let address = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let prefix = path.trim_end_matches('/');
        Ok(Self {
            url: format!("ws://{address}{prefix}/socket.io/?EIO=4&transport=websocket"),
            address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_ws_base_urls() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(e.address, "127.0.0.1:8080");
        assert_eq!(
            e.url,
            "ws://127.0.0.1:8080/socket.io/?EIO=4&transport=websocket"
        );
        let e = Endpoint::parse("ws://example.org/wakili/").unwrap();
        assert_eq!(e.address, "example.org:80");
        assert_eq!(
            e.url,
            "ws://example.org:80/wakili/socket.io/?EIO=4&transport=websocket"
        );
        let e = Endpoint::parse("HTTP://[::1]:9000/").unwrap();
        assert_eq!(e.address, "[::1]:9000");
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        for url in [
            "https://example.org",
            "wss://example.org",
            "example.org:80",
            "http://",
            "http://host:port",
            "http://host:99999",
            "http://u@host:1",
            "http://host:1/?x=1",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(ClientError::Url { .. })),
                "{url}"
            );
        }
    }
}
