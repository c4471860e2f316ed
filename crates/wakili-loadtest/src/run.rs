//! Running a test: rooms started over the ramp-up, each booking, joining, messaging, leaving.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use serde_json::{json, value::RawValue};
use tokio::time::{Instant, MissedTickBehavior};
use wakili_auth::{Minter, TokenRequest};
use wakili_client::{Client, ClientError, Config};
use wakili_core::{Role, UserId};

use crate::{Live, Report};

/// Longest a waiting member may wait to be admitted.
const ADMISSION_LIMIT: Duration = Duration::from_secs(10);
/// Longest the signals in flight may take to arrive once sending stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Token lifetime: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(26 * 3600);

/// Who the simulated participants are: tokens signed with the server's HS256 secret, user ids
/// unique to this run (`loadtest-<run>-l<room>`, `-c<room>`, `-a<room>-<k>`).
pub struct Identity {
    minter: Minter,
    run: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Participants whose tokens `secret` (the server's `auth.secret`) signs; `run` tells this
    /// run's users apart from earlier ones.
    pub fn hs256(secret: &[u8], run: &str) -> Result<Self, String> {
        let minter = Minter::hs256(secret).map_err(|e| format!("token secret: {e}"))?;
        Ok(Self {
            minter,
            run: run.to_owned(),
        })
    }

    fn token(&self, user: &str, role: Role) -> Result<String, String> {
        let request = TokenRequest {
            user_id: UserId::parse(user).map_err(|e| e.to_string())?,
            role,
            name: user.to_owned(),
            ttl: TOKEN_TTL,
        };
        self.minter
            .mint(&request, chrono::Utc::now())
            .map_err(|e| e.to_string())
    }
}

/// One room's signal counts, to know when its signals in flight have arrived.
#[derive(Default)]
struct RoomCounts {
    sent: AtomicU64,
    received: AtomicU64,
}

struct Member {
    client: Client,
    participant_id: String,
    role: Role,
    admitted: Arc<AtomicBool>,
}

#[derive(Deserialize)]
struct Delivered {
    payload: Stamp,
}

#[derive(Deserialize)]
struct Stamp {
    t: u64,
}

fn kind_of(step: &str, e: &ClientError) -> String {
    match e {
        ClientError::Rejected { code, .. } => format!("{step}:{code}"),
        ClientError::Refused(_) => format!("{step}:refused"),
        ClientError::Connect { .. } => format!("{step}:connect"),
        ClientError::ConnectTimeout(_) | ClientError::Timeout { .. } => format!("{step}:timeout"),
        ClientError::Closed => format!("{step}:closed"),
        _ => format!("{step}:other"),
    }
}

/// Runs the test against the server at `base_url` (`http://host:port`) and returns its report;
/// `live` shows the progress meanwhile.
pub async fn run(base_url: String, identity: Identity, live: Arc<Live>) -> Report {
    let params = live.params().clone();
    let rooms = params.rooms();
    let base: Arc<str> = base_url.trim_end_matches('/').into();
    let identity = Arc::new(identity);
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(_) => {
            live.error("http_client", 1);
            live.set_phase("done");
            return live.report();
        }
    };
    let end = live.epoch + params.ramp_up + params.duration;
    live.set_phase("booking and joining");
    let mut tasks = Vec::with_capacity(rooms as usize);
    for index in 0..rooms {
        tasks.push(tokio::spawn(room(
            index,
            Arc::clone(&base),
            http.clone(),
            Arc::clone(&identity),
            Arc::clone(&live),
            end,
        )));
    }
    let phases = {
        let live = Arc::clone(&live);
        let ramp_end = live.epoch + params.ramp_up;
        tokio::spawn(async move {
            tokio::time::sleep_until(ramp_end).await;
            live.set_phase("messaging");
            tokio::time::sleep_until(end).await;
            live.set_phase("leaving");
        })
    };
    for task in tasks {
        if task.await.is_err() {
            live.error("room_task_failed", 1);
        }
    }
    phases.abort();
    let first = live.first_join.load(Ordering::Relaxed);
    if first != u64::MAX {
        live.messaging_window(
            first as f64 / 1e9,
            (params.ramp_up + params.duration).as_secs_f64(),
        );
    }
    live.set_phase("done");
    live.report()
}

async fn book(
    http: &reqwest::Client,
    base: &str,
    lawyer_token: &str,
    client: &str,
) -> Result<String, String> {
    let body = json!({
        "clientId": client,
        "scheduledAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "durationMinutes": 60,
        "notes": "load test",
    });
    let response = http
        .post(format!("{base}/api/v1/consultations"))
        .bearer_auth(lawyer_token)
        .json(&body)
        .send()
        .await
        .map_err(|_| "booking:http".to_owned())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("booking:{}", status.as_u16()));
    }
    let created: serde_json::Value = response
        .json()
        .await
        .map_err(|_| "booking:body".to_owned())?;
    created["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "booking:body".to_owned())
}

async fn join(
    base: &str,
    token: &str,
    role: Role,
    consultation: &str,
    live: &Arc<Live>,
    counts: &Arc<RoomCounts>,
) -> Result<Member, String> {
    let admitted = Arc::new(AtomicBool::new(false));
    let handler = {
        let (live, counts, admitted) =
            (Arc::clone(live), Arc::clone(counts), Arc::clone(&admitted));
        move |name: &str, data: &RawValue| match name {
            "signal" => {
                if let Ok(d) = serde_json::from_str::<Delivered>(data.get()) {
                    live.signal_ns
                        .record(live.now_ns().saturating_sub(d.payload.t));
                }
                live.signals_received.fetch_add(1, Ordering::Relaxed);
                counts.received.fetch_add(1, Ordering::Relaxed);
            }
            "consultation:admitted" => admitted.store(true, Ordering::Relaxed),
            _ => {}
        }
    };
    let started = live.now_ns();
    let client = Client::connect_with_handler(base, token, &Config::default(), handler)
        .await
        .map_err(|e| kind_of("connect", &e))?;
    let ack = match client
        .call_ok(
            "consultation:join",
            &json!({ "consultationId": consultation }),
        )
        .await
    {
        Ok(ack) => ack,
        Err(e) => {
            client.close().await;
            return Err(kind_of("join", &e));
        }
    };
    live.join_done(live.now_ns().saturating_sub(started));
    if !ack["waiting"].as_bool().unwrap_or(false) {
        admitted.store(true, Ordering::Relaxed);
    }
    let participant_id = ack["participantId"].as_str().unwrap_or_default().to_owned();
    Ok(Member {
        client,
        participant_id,
        role,
        admitted,
    })
}

/// A quality report that varies a little per member and tick, inside the "high" range.
fn quality_report(member: usize, tick: u64) -> serde_json::Value {
    let wobble = ((member as u64 * 7 + tick * 13) % 10) as f64;
    json!({
        "rttMs": 20.0 + wobble * 3.0,
        "jitterMs": 1.0 + wobble / 5.0,
        "packetLossPct": wobble / 20.0,
        "outboundKbps": 1500.0 + wobble * 40.0,
        "inboundKbps": 1450.0 + wobble * 40.0,
        "frameRate": 30.0,
        "width": 1280,
        "height": 720,
        "candidateType": if member.is_multiple_of(3) { "relay" } else { "host" },
    })
}

async fn send_signal(
    live: &Live,
    counts: &RoomCounts,
    from: &Member,
    to: &str,
    kind: &str,
    acked: bool,
) {
    let message = json!({
        "to": to,
        "type": kind,
        "payload": {
            "t": live.now_ns(),
            "candidate": "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 rport 46154 generation 0",
            "sdpMid": "0",
        },
    });
    let result = if acked {
        from.client.call_ok("signal", &message).await.map(|_| ())
    } else {
        from.client.emit("signal", &message).await
    };
    match result {
        Ok(()) => {
            live.signals_sent.fetch_add(1, Ordering::Relaxed);
            counts.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => live.error(kind_of("signal", &e), 1),
    }
}

async fn room(
    index: u32,
    base: Arc<str>,
    http: reqwest::Client,
    identity: Arc<Identity>,
    live: Arc<Live>,
    end: Instant,
) {
    let params = live.params().clone();
    let rooms = params.rooms().max(1);
    let start = live.epoch + params.ramp_up.mul_f64(f64::from(index) / f64::from(rooms));
    tokio::time::sleep_until(start).await;
    let run = identity.run.clone();
    let lawyer = format!("loadtest-{run}-l{index}");
    let client = format!("loadtest-{run}-c{index}");
    let mut people = vec![(client.clone(), Role::Client), (lawyer, Role::Lawyer)];
    for k in 2..params.room_size {
        people.push((format!("loadtest-{run}-a{index}-{k}"), Role::Admin));
    }
    let mut tokens = Vec::with_capacity(people.len());
    for (user, role) in &people {
        match identity.token(user, *role) {
            Ok(token) => tokens.push((token, *role)),
            Err(_) => {
                live.error("token", u64::from(params.room_size));
                return;
            }
        }
    }
    let consultation = match book(&http, &base, &tokens[1].0, &client).await {
        Ok(id) => id,
        Err(kind) => {
            live.error(kind, u64::from(params.room_size));
            return;
        }
    };
    let counts = Arc::new(RoomCounts::default());
    let mut members = Vec::with_capacity(tokens.len());
    for (k, (token, role)) in tokens.iter().enumerate() {
        if k > 0 && !params.join_interval.is_zero() {
            tokio::time::sleep(params.join_interval).await;
        }
        match join(&base, token, *role, &consultation, &live, &counts).await {
            Ok(member) => members.push(member),
            Err(kind) => live.error(kind, 1),
        }
    }
    let admission_deadline = Instant::now() + ADMISSION_LIMIT;
    while members.iter().any(|m| !m.admitted.load(Ordering::Relaxed))
        && Instant::now() < admission_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let not_admitted = members
        .iter()
        .filter(|m| !m.admitted.load(Ordering::Relaxed))
        .count();
    live.error("admission_timeout", not_admitted as u64);

    // Offer and answer, acknowledged, before the candidates.
    if let Some(lawyer) = members.iter().find(|m| m.role == Role::Lawyer) {
        for other in members.iter().filter(|m| m.role != Role::Lawyer) {
            send_signal(&live, &counts, lawyer, &other.participant_id, "offer", true).await;
            send_signal(
                &live,
                &counts,
                other,
                &lawyer.participant_id,
                "answer",
                true,
            )
            .await;
        }
    }
    let mut tick = tokio::time::interval(params.message_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut round = 0u64;
    loop {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        for (i, member) in members.iter().enumerate() {
            for peer in members
                .iter()
                .filter(|p| p.participant_id != member.participant_id)
            {
                send_signal(
                    &live,
                    &counts,
                    member,
                    &peer.participant_id,
                    "candidate",
                    false,
                )
                .await;
            }
            match member
                .client
                .call_ok("quality:report", &quality_report(i, round))
                .await
            {
                Ok(_) => {
                    live.quality_reports.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => live.error(kind_of("quality", &e), 1),
            }
        }
        round += 1;
    }

    let drain_deadline = Instant::now() + DRAIN_LIMIT;
    while counts.received.load(Ordering::Relaxed) < counts.sent.load(Ordering::Relaxed)
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost = counts
        .sent
        .load(Ordering::Relaxed)
        .saturating_sub(counts.received.load(Ordering::Relaxed));
    live.error("signal_lost", lost);

    for member in members.iter().filter(|m| m.role != Role::Lawyer) {
        if let Err(e) = member
            .client
            .call_ok("consultation:leave", &json!({}))
            .await
        {
            live.error(kind_of("leave", &e), 1);
        }
        member.client.close().await;
        live.active.fetch_sub(1, Ordering::Relaxed);
    }
    for member in members.iter().filter(|m| m.role == Role::Lawyer) {
        if let Err(e) = member.client.call_ok("consultation:end", &json!({})).await {
            live.error(kind_of("end", &e), 1);
        }
        member.client.close().await;
        live.active.fetch_sub(1, Ordering::Relaxed);
    }
}
