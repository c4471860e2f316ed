//! The router: every route, its OpenAPI description and the middleware around them.

use std::{any::Any, sync::Arc};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{ApiError, AppState, routes};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wakili",
        description = "Secure video consultations between lawyers and their clients.",
        license(name = "MIT"),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "consultations", description = "Booking and lifecycle of video consultations"),
        (name = "users", description = "The caller"),
        (name = "webrtc", description = "ICE servers, TURN credentials and media settings"),
        (name = "health", description = "Liveness and readiness"),
        (name = "dev", description = "Development only (`wakili serve --dev`)"),
        (name = "monitoring", description = "Metrics, connection quality, load tests"),
        (name = "devices", description = "Phones and browsers receiving push notifications"),
        (name = "notifications", description = "Call answers and the push delivery log"),
        (name = "webhooks", description = "Webhook endpoints, the delivery log, and (under `webhooks`) the events sent"),
    ),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every documented route and the OpenAPI document describing them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use routes::{consultations as c, health, me, performance as p, recordings as r, web, webrtc};
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(me::me))
        .routes(routes!(c::list, c::create))
        .routes(routes!(c::get, c::update))
        .routes(routes!(c::cancel))
        .routes(routes!(c::start))
        .routes(routes!(c::end))
        .routes(routes!(c::audit))
        .routes(routes!(c::set_quality_profile))
        .routes(routes!(routes::participants::list))
        .routes(routes!(
            routes::participants::put,
            routes::participants::remove
        ))
        .routes(routes!(webrtc::config))
        .routes(routes!(webrtc::mobile))
        .routes(routes!(webrtc::turn_stats))
        .routes(routes!(r::list, r::create))
        .routes(routes!(r::get, r::delete))
        .routes(routes!(r::put_chunk))
        .routes(routes!(r::complete))
        .routes(routes!(r::manifest))
        .routes(routes!(r::signing_key))
        .routes(routes!(r::download_url))
        .routes(routes!(r::media))
        .routes(routes!(r::legal_hold))
        .routes(routes!(r::usage))
        .routes(routes!(web::dev_token))
        .routes(routes!(p::metrics))
        .routes(routes!(p::quality))
        .routes(routes!(p::snapshot))
        .routes(routes!(
            routes::load_tests::start_load_test,
            routes::load_tests::load_test
        ))
        .routes(routes!(routes::devices::list, routes::devices::register))
        .routes(routes!(routes::devices::delete))
        .routes(routes!(routes::devices::heartbeat))
        .routes(routes!(routes::notifications::call_response))
        .routes(routes!(routes::notifications::deliveries))
        .routes(routes!(routes::webhooks::list, routes::webhooks::create))
        .routes(routes!(routes::webhooks::get, routes::webhooks::update))
        .routes(routes!(routes::webhooks::rotate))
        .routes(routes!(routes::webhooks::deliveries))
        .routes(routes!(routes::webhooks::redeliver))
        .split_for_parts();
    (
        router,
        crate::webhook_docs::document(document_common_responses(openapi)),
    )
}

/// Adds the answers every operation of a kind can give, so no route's annotation can forget
/// them: 401 wherever a token is required, and 400 / 413 / 415 wherever a JSON body is read (the
/// extractors in `extract.rs` give them before the handler runs).
fn document_common_responses(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description).into());
            };
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add("401", "Missing, invalid or expired token");
            }
            let json_body = operation
                .request_body
                .as_ref()
                .is_some_and(|body| match body {
                    utoipa::openapi::RefOr::T(body) => {
                        body.content.contains_key("application/json")
                    }
                    utoipa::openapi::RefOr::Ref(_) => false,
                });
            if json_body {
                add(
                    "400",
                    "Malformed JSON, or a body that does not match the schema",
                );
                add(
                    "413",
                    "Body larger than the server accepts (max_body_bytes)",
                );
                add(
                    "415",
                    "Body not sent as JSON (Content-Type: application/json)",
                );
            }
        }
    }
    openapi
}

/// The document as this server serves it: rules that come from its configuration are stated
/// too (the quality profiles a consultation may be set to).
fn with_settings(
    openapi: &utoipa::openapi::OpenApi,
    settings: &wakili_settings::Settings,
) -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi).unwrap_or_default();
    let names: Vec<&String> = settings.media.profiles.keys().collect();
    if let Some(profile) = doc
        .pointer_mut("/components/schemas/SetQualityProfile/properties/profile")
        .and_then(serde_json::Value::as_object_mut)
    {
        profile.insert("enum".into(), serde_json::json!(names));
    }
    doc
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::internal("a handler panicked").into_response()
}

fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The path only: query strings may carry signed-URL tokens.
    tracing::info_span!(
        "http",
        request_id,
        method = %request.method(),
        path = request.uri().path(),
        user_id = tracing::field::Empty,
        consultation_id = tracing::field::Empty,
    )
}

/// The complete application: routes, OpenAPI, fallbacks and middleware.
pub fn router(state: AppState) -> Router {
    let settings = &state.settings;
    let (api, openapi) = api();
    let openapi = Arc::new(with_settings(&openapi, settings));
    let middleware = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes));
    let router = api
        .merge(routes::web::pages(&settings.web))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { Json(openapi.as_ref().clone()) }
            }),
        )
        .merge(crate::routes::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // After the fallbacks, so unmatched requests are counted too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::monitoring::track_http,
        ))
        .with_state(state.clone())
        .layer(middleware);
    // Outermost, so long-lived Socket.IO connections skip the request timeout.
    state.signal_layer.clone().wrap(router)
}
