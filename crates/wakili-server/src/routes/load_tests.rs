//! Load tests the server runs against itself, started from the dashboard:
//! `POST /api/v1/performance/load-tests` (admins, bounded parameters, one at a time) and
//! `GET` for the progress and the report.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::{Json as JsonResponse, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use wakili_auth::Algorithm;
use wakili_loadtest::{Identity, Limits, Live, Params, Progress, Report};

use crate::{ApiError, AppState, auth::Admin, error::ErrorBody, extract::DeferredJson};

/// The dashboard's load test: the current or last one.
#[derive(Default)]
pub struct LoadTests {
    base_url: OnceLock<String>,
    current: Mutex<Option<Current>>,
}

struct Current {
    id: String,
    live: Arc<Live>,
    report: Arc<Mutex<Option<Report>>>,
}

impl LoadTests {
    /// Where the server listens (set by `serve`), for the engine to connect to.
    pub(crate) fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        let ip = if addr.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            addr.ip()
        };
        let _ = self.base_url.set(format!(
            "http://{}",
            std::net::SocketAddr::new(ip, addr.port())
        ));
    }
}

/// A load test's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestStatus {
    /// Its id.
    pub id: String,
    /// `running` or `finished`.
    pub state: &'static str,
    /// What was asked.
    pub params: Params,
    /// Where it is.
    #[schema(value_type = Object)]
    pub progress: Progress,
    /// The final figures, once finished.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Report>,
}

fn status_of(current: &Current) -> LoadTestStatus {
    let report = current
        .report
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    LoadTestStatus {
        id: current.id.clone(),
        state: if report.is_some() {
            "finished"
        } else {
            "running"
        },
        params: current.live.params().clone(),
        progress: current.live.progress(),
        report,
    }
}

/// Starts a load test against this server (admins; `[metrics] load_tests = true`). At most 2,000
/// participants, rooms of 2–8, ramp-up ≤ 5 min, duration ≤ 10 min, message interval ≥ 100 ms,
/// join interval ≤ 10 s. Participants' tokens are signed with the server's HS256 secret.
#[utoipa::path(post, path = "/api/v1/performance/load-tests", tag = "monitoring",
    security(("bearer" = [])),
    request_body(content = Params, description = "The load test's shape (durations like \"30s\")"),
    responses(
        (status = 202, description = "Started", body = LoadTestStatus),
        (status = 400, description = "Parameters out of bounds or malformed", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin, or load tests are disabled", body = ErrorBody),
        (status = 409, description = "One is running, or the server cannot sign test tokens", body = ErrorBody),
    ))]
pub async fn start_load_test(
    State(state): State<AppState>,
    _: Admin,
    params: DeferredJson<Params>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.settings.metrics.load_tests {
        return Err(ApiError::forbidden(
            "load tests are disabled on this server ([metrics] load_tests = false)",
        ));
    }
    let params = params.parse()?;
    let problems = params.problems(&Limits::SERVER);
    if !problems.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameters",
            format!(
                "load test parameters out of bounds: {}",
                problems.join("; ")
            ),
        )
        .with_details(serde_json::json!({ "problems": problems })));
    }
    let auth_settings = &state.settings.auth;
    if auth_settings.algorithm != Algorithm::Hs256
        || auth_settings
            .issuer
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        || auth_settings
            .audience
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::conflict(
            "the server can sign test tokens only with HS256 and no issuer/audience; run `wakili loadtest --token-secret-file` from a machine with the platform's key instead",
        ));
    }
    let base_url = state
        .load_tests
        .base_url
        .get()
        .cloned()
        .ok_or_else(|| ApiError::conflict("the server's listen address is not known yet"))?;
    let secret = state.settings.hs256_secret().map_err(ApiError::internal)?;
    let id = wakili_core::new_id();
    let identity =
        Identity::hs256(&secret, &id[id.len().saturating_sub(8)..]).map_err(ApiError::internal)?;
    let mut current = state
        .load_tests
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(running) = current.as_ref()
        && running
            .report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    {
        return Err(ApiError::conflict(format!(
            "load test {} is still running; wait for it to finish",
            running.id
        )));
    }
    let live = Arc::new(Live::new(params, state.now()));
    let report = Arc::new(Mutex::new(None));
    tracing::info!(load_test_id = %id, participants = live.params().participants, "load test started");
    tokio::spawn({
        let (live, report, id) = (Arc::clone(&live), Arc::clone(&report), id.clone());
        async move {
            let finished = wakili_loadtest::run(base_url, identity, live).await;
            tracing::info!(load_test_id = %id, errors = finished.error_count, joined = finished.joined, "load test finished");
            *report.lock().unwrap_or_else(PoisonError::into_inner) = Some(finished);
        }
    });
    let started = Current { id, live, report };
    let status = status_of(&started);
    *current = Some(started);
    Ok((StatusCode::ACCEPTED, JsonResponse(status)))
}

/// The current or last load test started from the dashboard (admins).
#[utoipa::path(get, path = "/api/v1/performance/load-tests", tag = "monitoring",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Its state", body = LoadTestStatus),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "None was started since the server started", body = ErrorBody),
    ))]
pub async fn load_test(
    State(state): State<AppState>,
    _: Admin,
) -> Result<JsonResponse<LoadTestStatus>, ApiError> {
    let current = state
        .load_tests
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    current
        .as_ref()
        .map(|c| JsonResponse(status_of(c)))
        .ok_or_else(|| ApiError::not_found("no load test was started since the server started"))
}
