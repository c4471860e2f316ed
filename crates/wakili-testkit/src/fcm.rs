//! A local FCM for tests and benchmarks: the HTTP v1 send endpoint and the
//! OAuth2 token endpoint, implemented faithfully enough that a sender passing against it does
//! the real protocol.
//!
//! - `POST /token` accepts only the JWT-bearer grant with an RS256 assertion that verifies
//!   against the test service account's **public** key, issued by its `client_email`, addressed
//!   to this endpoint, asking for the FCM scope and living at most an hour. It answers like
//!   Google (`access_token`, `expires_in`, `token_type`), or `400 invalid_grant`.
//! - `POST /v1/projects/{project}/messages:send` needs a live bearer token from that endpoint
//!   (else `401 UNAUTHENTICATED`), checks the message's shape (one target, string-only data,
//!   no reserved keys, the `android` / `apns` / `webpush` fields and their formats, the 4 KiB
//!   payload limit) and answers `{"name": "projects/…/messages/…"}` or the documented error body
//!   with `error.details[].errorCode` (`INVALID_ARGUMENT`, `UNREGISTERED`, `QUOTA_EXCEEDED` with
//!   `Retry-After`, `UNAVAILABLE`, `INTERNAL`), scripted by the test.
//!
//! The test key pair is generated when the fake starts; nothing secret is committed.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use wakili_push::oauth::{AssertionClaims, FCM_SCOPE, JWT_BEARER};

/// A freshly generated service account (RSA 2048) and its public key.
#[derive(Clone)]
pub struct TestAccount {
    /// The service-account JSON key, as Firebase hands it out (with `token_uri` unset; point
    /// `push.token_url` at the fake).
    pub json: String,
    /// The matching public key, PEM.
    pub public_pem: String,
    /// The account.
    pub client_email: String,
    /// The project.
    pub project_id: String,
}

impl TestAccount {
    /// Generates a key pair.
    ///
    /// # Panics
    /// When key generation fails (a broken test environment).
    #[allow(clippy::expect_used)]
    pub fn generate(project_id: &str) -> Self {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let mut rng = rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let private_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 PEM")
            .to_string();
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public key PEM");
        let client_email = format!("wakili-push@{project_id}.iam.gserviceaccount.com");
        let json = json!({
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": "test-key-1",
            "private_key": private_pem,
            "client_email": client_email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        })
        .to_string();
        Self {
            json,
            public_pem,
            client_email,
            project_id: project_id.into(),
        }
    }
}

/// A scripted failure for the next send requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `429 QUOTA_EXCEEDED`, with `Retry-After: n` seconds when given.
    Quota(Option<u64>),
    /// `503 UNAVAILABLE`.
    Unavailable,
    /// `500 INTERNAL`.
    Internal,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `message` object.
    pub message: Value,
    /// When it arrived.
    pub at: Instant,
}

struct Shared {
    project: String,
    client_email: String,
    key: DecodingKey,
    token_url: Mutex<String>,
    token_lifetime: Mutex<Duration>,
    tokens: Mutex<HashMap<String, Instant>>,
    faults: Mutex<VecDeque<Fault>>,
    down: Mutex<Option<Fault>>,
    unregistered: Mutex<HashSet<String>>,
    received: Mutex<Vec<Received>>,
    record: bool,
    delay: Mutex<Duration>,
    hang: AtomicBool,
    grants: AtomicU64,
    accepted: AtomicU64,
    unauthenticated: AtomicU64,
    refused: AtomicU64,
    next: AtomicU64,
}

/// The running fake; stops when dropped.
pub struct FakeFcm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeFcm {
    /// Starts on `127.0.0.1:0` for `account`, keeping every accepted message.
    pub async fn start(account: &TestAccount) -> std::io::Result<Self> {
        Self::start_with(account, true).await
    }

    /// Starts; `record: false` only counts messages (benchmarks).
    pub async fn start_with(account: &TestAccount, record: bool) -> std::io::Result<Self> {
        let key = DecodingKey::from_rsa_pem(account.public_pem.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            project: account.project_id.clone(),
            client_email: account.client_email.clone(),
            key,
            token_url: Mutex::new(format!("http://{addr}/token")),
            token_lifetime: Mutex::new(Duration::from_secs(3600)),
            tokens: Mutex::new(HashMap::new()),
            faults: Mutex::new(VecDeque::new()),
            down: Mutex::new(None),
            unregistered: Mutex::new(HashSet::new()),
            received: Mutex::new(Vec::new()),
            record,
            delay: Mutex::new(Duration::ZERO),
            hang: AtomicBool::new(false),
            grants: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            unauthenticated: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            next: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(send))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// Base URL (`push.fcm_base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Token endpoint (`push.token_url`).
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Lifetime of the access tokens handed out from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.shared.token_lifetime) = lifetime;
    }

    /// Forgets every access token handed out (a revoked key): the next sends get 401.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }

    /// The next `faults.len()` send requests fail with these, in order.
    pub fn fail_next(&self, faults: &[Fault]) {
        lock(&self.shared.faults).extend(faults.iter().copied());
    }

    /// Every send fails with `fault` until [`FakeFcm::recover`] (an outage).
    pub fn go_down(&self, fault: Fault) {
        *lock(&self.shared.down) = Some(fault);
    }

    /// Ends an outage.
    pub fn recover(&self) {
        *lock(&self.shared.down) = None;
    }

    /// Sends to `token` answer `404 UNREGISTERED` (the app was uninstalled).
    pub fn unregister(&self, token: &str) {
        lock(&self.shared.unregistered).insert(token.into());
    }

    /// Each accepted send waits this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// From now on every send is accepted (counted and recorded) and never answered: the
    /// provider took the message and the sender never learns it did.
    pub fn hang(&self) {
        self.shared.hang.store(true, Ordering::Relaxed);
    }

    /// Accepted messages so far (when recording).
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Accepted messages so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Access tokens granted so far.
    pub fn grants(&self) -> u64 {
        self.shared.grants.load(Ordering::Relaxed)
    }

    /// Sends refused for a missing, unknown or expired token.
    pub fn unauthenticated(&self) -> u64 {
        self.shared.unauthenticated.load(Ordering::Relaxed)
    }

    /// Sends refused for a malformed message.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn oauth_error(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "invalid_grant", "error_description": description })),
    )
        .into_response()
}

/// Minimal `application/x-www-form-urlencoded` decoding (enough for the grant).
fn form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return oauth_error("content type must be application/x-www-form-urlencoded");
    }
    let fields = form(&body);
    if fields.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "unsupported_grant_type", "error_description": "Invalid grant_type" })),
        )
            .into_response();
    }
    let Some(assertion) = fields.get("assertion") else {
        return oauth_error("Missing required parameter: assertion");
    };
    let token_url = lock(&s.token_url).clone();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&token_url]);
    validation.set_issuer(&[&s.client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    validation.leeway = 60;
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &s.key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return oauth_error(&format!("Invalid JWT Signature or claims: {e}")),
    };
    if claims.exp.saturating_sub(claims.iat) > 3600 {
        return oauth_error("Invalid JWT: Token must be a short-lived token (60 minutes)");
    }
    if !claims.scope.split(' ').any(|sc| sc == FCM_SCOPE) {
        return oauth_error("Invalid OAuth scope or ID token audience provided.");
    }
    let n = s.grants.fetch_add(1, Ordering::Relaxed) + 1;
    let access = format!("ya29.fake-{n}-{}", wakili_core::new_id());
    let lifetime = *lock(&s.token_lifetime);
    lock(&s.tokens).insert(access.clone(), Instant::now() + lifetime);
    axum::Json(json!({
        "access_token": access,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

fn fcm_error(status: StatusCode, rpc: &str, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "status": rpc,
                "details": [{
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": code,
                }],
            }
        })),
    )
        .into_response()
}

fn invalid(message: String) -> Response {
    fcm_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        &message,
    )
}

async fn send(
    State(s): State<Arc<Shared>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let live = bearer.is_some_and(|t| {
        lock(&s.tokens)
            .get(t)
            .is_some_and(|exp| Instant::now() < *exp)
    });
    if !live {
        s.unauthenticated.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": {
                "code": 401,
                "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                "status": "UNAUTHENTICATED",
            }})),
        )
            .into_response();
    }
    if project != s.project {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "error": {
                "code": 403,
                "message": format!("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}'"),
                "status": "PERMISSION_DENIED",
            }})),
        )
            .into_response();
    }
    let fault = lock(&s.down).or_else(|| lock(&s.faults).pop_front());
    match fault {
        Some(Fault::Quota(after)) => {
            let mut response = fcm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "QUOTA_EXCEEDED",
                "Quota exceeded for quota metric 'Send requests'",
            );
            if let Some(after) = after
                && let Ok(v) = after.to_string().parse()
            {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
        Some(Fault::Unavailable) => {
            return fcm_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "UNAVAILABLE",
                "The service is currently unavailable.",
            );
        }
        Some(Fault::Internal) => {
            return fcm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "INTERNAL",
                "Internal error encountered.",
            );
        }
        None => {}
    }
    let message = match check_message(&body) {
        Ok(message) => message,
        Err(problem) => {
            s.refused.fetch_add(1, Ordering::Relaxed);
            return invalid(problem);
        }
    };
    let token = message["token"].as_str().unwrap_or_default();
    if lock(&s.unregistered).contains(token) {
        return fcm_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "UNREGISTERED",
            "Requested entity was not found.",
        );
    }
    let delay = *lock(&s.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let n = s.next.fetch_add(1, Ordering::Relaxed);
    if s.record {
        lock(&s.received).push(Received {
            message,
            at: Instant::now(),
        });
    }
    s.accepted.fetch_add(1, Ordering::Relaxed);
    if s.hang.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
    axum::Json(json!({ "name": format!("projects/{}/messages/0:{n}", s.project) })).into_response()
}

fn is_duration(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.strip_suffix('s').is_some_and(|n| {
            let mut parts = n.splitn(2, '.');
            let whole = parts.next().unwrap_or("");
            let frac = parts.next();
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.is_none_or(|f| {
                    !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit())
                })
        })
    })
}

fn string_map(v: &Value, at: &str) -> Result<(), String> {
    let Some(map) = v.as_object() else {
        return Err(format!("Invalid value at '{at}': expected a map"));
    };
    for (k, value) in map {
        if !value.is_string() {
            return Err(format!(
                "Invalid value at '{at}[{k}]' ({}), expected a string",
                value
            ));
        }
    }
    Ok(())
}

fn known(obj: &serde_json::Map<String, Value>, at: &str, fields: &[&str]) -> Result<(), String> {
    for k in obj.keys() {
        if !fields.contains(&k.as_str()) {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
            ));
        }
    }
    Ok(())
}

/// The `message` if it is one FCM would accept, else why not.
fn check_message(body: &[u8]) -> Result<Value, String> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    let root_obj = root.as_object().ok_or("Invalid JSON payload received.")?;
    known(root_obj, "", &["message", "validate_only"])?;
    let message = root.get("message").ok_or("Missing message")?.clone();
    let m = message.as_object().ok_or("message: expected an object")?;
    known(
        m,
        "message",
        &[
            "name",
            "data",
            "notification",
            "android",
            "webpush",
            "apns",
            "fcm_options",
            "token",
            "topic",
            "condition",
        ],
    )?;
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|k| m.contains_key(**k))
        .count();
    if targets != 1 {
        return Err("Exactly one of token, topic or condition must be specified".into());
    }
    if m.get("token")
        .is_some_and(|t| t.as_str().is_none_or(str::is_empty))
    {
        return Err("The registration token is not a valid FCM registration token".into());
    }
    if let Some(data) = m.get("data") {
        string_map(data, "message.data")?;
        for k in data.as_object().into_iter().flat_map(|o| o.keys()) {
            if k == "from"
                || k == "message_type"
                || k == "collapse_key"
                || k.starts_with("google.")
                || k.starts_with("gcm.")
            {
                return Err(format!("Invalid data payload key: {k}"));
            }
        }
    }
    if let Some(n) = m.get("notification") {
        let n = n
            .as_object()
            .ok_or("message.notification: expected an object")?;
        known(n, "message.notification", &["title", "body", "image"])?;
        for v in n.values() {
            if !v.is_string() {
                return Err("message.notification: values must be strings".into());
            }
        }
    }
    let payload = serde_json::to_vec(
        &json!({ "notification": m.get("notification"), "data": m.get("data") }),
    )
    .map_or(usize::MAX, |v| v.len());
    if payload > 4096 {
        return Err(format!(
            "Message is too big: {payload} bytes (at most 4096)"
        ));
    }
    if let Some(a) = m.get("android") {
        let a = a.as_object().ok_or("message.android: expected an object")?;
        known(
            a,
            "message.android",
            &[
                "collapse_key",
                "priority",
                "ttl",
                "restricted_package_name",
                "data",
                "notification",
                "fcm_options",
                "direct_boot_ok",
            ],
        )?;
        if let Some(p) = a.get("priority")
            && !matches!(p.as_str(), Some("NORMAL" | "HIGH" | "normal" | "high"))
        {
            return Err(format!("Invalid value at 'message.android.priority' ({p})"));
        }
        if let Some(ttl) = a.get("ttl")
            && !is_duration(ttl)
        {
            return Err(format!(
                "Invalid value at 'message.android.ttl' ({ttl}): Illegal duration format"
            ));
        }
        if let Some(n) = a.get("notification") {
            let n = n
                .as_object()
                .ok_or("message.android.notification: expected an object")?;
            known(
                n,
                "message.android.notification",
                &[
                    "title",
                    "body",
                    "icon",
                    "color",
                    "sound",
                    "tag",
                    "click_action",
                    "body_loc_key",
                    "body_loc_args",
                    "title_loc_key",
                    "title_loc_args",
                    "channel_id",
                    "ticker",
                    "sticky",
                    "event_time",
                    "local_only",
                    "notification_priority",
                    "default_sound",
                    "default_vibrate_timings",
                    "default_light_settings",
                    "vibrate_timings",
                    "visibility",
                    "notification_count",
                    "light_settings",
                    "image",
                ],
            )?;
        }
    }
    if let Some(apns) = m.get("apns") {
        let apns = apns.as_object().ok_or("message.apns: expected an object")?;
        known(
            apns,
            "message.apns",
            &["headers", "payload", "fcm_options", "live_activity_token"],
        )?;
        if let Some(h) = apns.get("headers") {
            string_map(h, "message.apns.headers")?;
            let priority = h.get("apns-priority").and_then(Value::as_str);
            if priority.is_some_and(|p| p != "5" && p != "10") {
                return Err("apns-priority must be 5 or 10".into());
            }
            let push_type = h.get("apns-push-type").and_then(Value::as_str);
            if push_type.is_some_and(|t| {
                !matches!(
                    t,
                    "alert"
                        | "background"
                        | "voip"
                        | "complication"
                        | "fileprovider"
                        | "mdm"
                        | "location"
                        | "liveactivity"
                        | "pushtotalk"
                )
            }) {
                return Err("Invalid apns-push-type".into());
            }
            // APNs: background pushes must use priority 5.
            if push_type == Some("background") && priority == Some("10") {
                return Err("apns-priority 10 is not allowed for background notifications".into());
            }
            if let Some(exp) = h.get("apns-expiration").and_then(Value::as_str)
                && exp.parse::<u64>().is_err()
            {
                return Err("apns-expiration must be a UNIX epoch date in seconds".into());
            }
        }
        if let Some(p) = apns.get("payload")
            && !p.get("aps").is_some_and(Value::is_object)
        {
            return Err("message.apns.payload: aps dictionary required".into());
        }
    }
    if let Some(w) = m.get("webpush") {
        let w = w.as_object().ok_or("message.webpush: expected an object")?;
        known(
            w,
            "message.webpush",
            &["headers", "data", "notification", "fcm_options"],
        )?;
        if let Some(h) = w.get("headers") {
            string_map(h, "message.webpush.headers")?;
            if let Some(u) = h.get("Urgency").and_then(Value::as_str)
                && !matches!(u, "very-low" | "low" | "normal" | "high")
            {
                return Err("webpush Urgency must be very-low, low, normal or high".into());
            }
            if let Some(ttl) = h.get("TTL").and_then(Value::as_str)
                && ttl.parse::<u64>().is_err()
            {
                return Err("webpush TTL must be a number of seconds".into());
            }
        }
        if let Some(actions) = w.get("notification").and_then(|n| n.get("actions")) {
            let ok = actions.as_array().is_some_and(|a| {
                a.iter().all(|x| {
                    x.get("action").is_some_and(Value::is_string)
                        && x.get("title").is_some_and(Value::is_string)
                })
            });
            if !ok {
                return Err("webpush notification actions need action and title".into());
            }
        }
    }
    Ok(message)
}
