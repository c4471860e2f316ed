//! The REST API is described once, by the routes' `utoipa` annotations: `docs/openapi.json` must
//! be the document the code produces, since the TypeScript SDK generates its client types from
//! that file (`sdk/scripts/generate.mjs`, whose own check fails when `sdk/src/generated/openapi.ts`
//! lags behind it). Run with `WAKILI_WRITE_OPENAPI=1` to rewrite the file after a change, then
//! `npm run generate`.
//!
//! The file is the configuration-independent document of [`wakili_server::api`]: the server
//! serves the same at `/api/v1/openapi.json`, plus the quality profile names its settings define.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn the_checked_in_openapi_document_is_what_the_routes_describe() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let (_, openapi) = wakili_server::api();
    let generated = openapi.to_pretty_json().unwrap() + "\n";
    if std::env::var_os("WAKILI_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} differs from the routes' OpenAPI description; run `WAKILI_WRITE_OPENAPI=1 cargo test -p wakili-server --test api_description`, then `npm run generate`, and commit both",
        path.display()
    );
}
