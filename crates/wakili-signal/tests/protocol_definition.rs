//! The signaling protocol is defined once, in Rust: `docs/signaling.schema.json` must be what the
//! code generates, and the event tables of `docs/signaling.md` must list exactly the events the
//! code knows. Run with `WAKILI_WRITE_SCHEMA=1` to rewrite the schema file after a change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, path::PathBuf};

use wakili_signal::protocol::{EventName, schema, server};

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

#[test]
fn the_checked_in_schema_is_what_the_code_defines() {
    let path = docs().join("signaling.schema.json");
    let generated = schema::document_text();
    if std::env::var_os("WAKILI_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from the protocol types; run `WAKILI_WRITE_SCHEMA=1 cargo test -p wakili-signal --test protocol_definition` and commit it",
        path.display()
    );
}

/// The backticked event names in the first column of the `| event | … |` table that follows
/// `heading` in `text`.
fn table_events(text: &str, heading: &str) -> BTreeSet<String> {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in text[start..].lines().skip(1) {
        if line.starts_with("| event |") {
            in_table = true;
            continue;
        }
        if in_table && !line.starts_with('|') {
            break;
        }
        if in_table && !line.starts_with("|---") {
            let cell = line.split('|').nth(1).unwrap_or_default();
            for part in cell.split('`').skip(1).step_by(2) {
                names.insert(part.to_owned());
            }
        }
    }
    names
}

#[test]
fn the_docs_list_exactly_the_events_the_code_knows() {
    let text = std::fs::read_to_string(docs().join("signaling.md")).unwrap();
    let client: BTreeSet<String> = EventName::ALL
        .iter()
        .map(|e| e.as_str().to_owned())
        .collect();
    assert_eq!(
        table_events(&text, "## Client → server"),
        client,
        "docs/signaling.md, client events"
    );
    let mut generator = schemars::SchemaGenerator::default();
    let server: BTreeSet<String> = server::schemas(&mut generator)
        .into_iter()
        .map(|(name, _)| name.to_owned())
        .collect();
    assert_eq!(
        table_events(&text, "## Server → client"),
        server,
        "docs/signaling.md, server events"
    );
}
