//! The signaling protocol as one JSON Schema document (draft 2020-12), generated from the event
//! lists in [`super::client`], [`super::server`] and `wakili_core::room::Event`.
//!
//! `docs/signaling.schema.json` is this document, checked in for the TypeScript SDK to generate
//! its types from; a test fails when it and the code differ, and `wakili signaling-schema` prints
//! it for the running version.

use serde_json::{Map, Value, json};

use super::{Refusal, client, server};

/// The whole document: `clientEvents` (name → payload and ack fields), `serverEvents` (name →
/// payload), `errorAck`, and the shared `$defs`.
pub fn document() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut client_events = Map::new();
    for (name, payload, ack) in client::schemas(&mut generator) {
        client_events.insert(
            name.to_owned(),
            json!({ "payload": payload, "ackFields": ack }),
        );
    }
    let mut server_events = Map::new();
    for (name, payload) in server::schemas(&mut generator) {
        server_events.insert(name.to_owned(), payload.to_value());
    }
    let refusal = generator.subschema_for::<Refusal>();
    let definitions = generator.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:wakili:signaling",
        "title": "Wakili signaling protocol",
        "description": "Socket.IO events on the default namespace (see docs/signaling.md). A client event's ack is {ok: true, ...ackFields} or {ok: false, error: errorAck}.",
        "clientEvents": client_events,
        "serverEvents": server_events,
        "errorAck": refusal,
        "$defs": definitions,
    })
}

/// [`document`] as the checked-in file holds it: pretty-printed, with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let defs = doc["$defs"].as_object().expect("$defs");
        for (i, _) in text.match_indices("\"$ref\":\"#/$defs/") {
            let rest = &text[i + "\"$ref\":\"#/$defs/".len()..];
            let name = &rest[..rest.find('"').expect("closing quote")];
            assert!(defs.contains_key(name), "{name} is referenced, not defined");
        }
        assert_eq!(
            doc["clientEvents"]["consultation:join"]["payload"]["$ref"],
            "#/$defs/JoinRequest"
        );
        assert!(doc["serverEvents"]["participant:joined"].is_object());
    }
}
