//! The load generator: participants connect and join at a paced rate, then each sends signals to
//! the other participant of its pair at a fixed rate, stamped with the send time so the receiver
//! measures the latency. Runs in this process on the same cores as the server.
//!
//! Cost per message on this side is kept low: events are handled on the connection's reader
//! task (no channel), frames are written by a few pacer tasks (one per worker thread) instead of
//! a task per participant, and the receiver parses only the stamp.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;
use wakili_client::{Client, Config};

use wakili_client::histogram::Histogram;

/// A base ICE candidate line, padded or cut to the requested payload size.
const CANDIDATE: &str = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr \
                         10.0.0.5 rport 46154 generation 0 ufrag EsAw network-cost 999";
/// Loopback source addresses connections are spread over (127.0.0.2 …), so that no single source
/// address runs out of the connect() half of its ephemeral port range (see
/// `wakili_client::Config::local_address`).
pub(crate) const LOOPBACK_SOURCES: u8 = 16;
/// How long a client that joined into the waiting room may wait to be admitted.
const ADMISSION_LIMIT: Duration = Duration::from_secs(10);

/// Who joins what.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The servers' base URLs (one per node).
    pub urls: Vec<String>,
    /// Both participants of a pair on the same node.
    pub same_node: bool,
    /// Per participant: 2i is pair i's lawyer, 2i + 1 its client.
    pub tokens: Vec<String>,
    /// Per pair: the consultation both join.
    pub consultations: Vec<String>,
}

impl Plan {
    /// Where participant `index` connects: pair p's lawyer to node p mod n, its client to the
    /// next node, so that with several nodes every pair's signals cross nodes (or to the same
    /// node with `same_node`).
    pub fn url_for(&self, index: usize) -> &str {
        let next = usize::from(!self.same_node) * (index % 2);
        let node = (index / 2 + next) % self.urls.len().max(1);
        self.urls.get(node).map_or("", String::as_str)
    }
}

/// The load's shape.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Participants started per second.
    pub join_rate: f64,
    /// Signals per second per participant.
    pub rate: f64,
    /// Sending time.
    pub duration: Duration,
    /// Payload bytes per signal.
    pub payload_bytes: usize,
    /// Latency above which a signal is late.
    pub late: Duration,
    /// Wait for in-flight signals after sending stops.
    pub drain: Duration,
    /// Pause before reading memory once all joined.
    pub settle: Duration,
    /// Join only.
    pub idle: bool,
    /// Pacer tasks.
    pub pacers: usize,
    /// Kill the first node once everyone joined, and resume its participants on the others.
    pub kill_node: bool,
}

/// What a node's death cost: its participants resuming on the other nodes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KillStorm {
    /// Participants connected to the killed node.
    pub participants: u64,
    /// Of them, back in their consultation on another node.
    pub resumed: u64,
    /// Of them, not back (connect or join failed, or no ack within 10 s).
    pub lost: u64,
    /// Of the resumed, those that came back as a new participant (their resume was refused).
    pub other_participant: u64,
    /// From the kill to the last one's join ack.
    pub all_back_s: Option<f64>,
    /// Each one's new connection → join ack.
    pub latency: Option<Spread>,
}

/// Reads the server process's CPU time and memory, when it is a child of this benchmark.
pub trait Probe {
    /// Kills the first of several nodes (SIGKILL); `false` when there is no such node.
    fn kill_first_node(&self) -> bool {
        false
    }
    /// Server CPU-seconds so far.
    fn server_cpu_s(&self) -> Option<f64>;
    /// Server resident memory now, KiB.
    fn server_rss_kib(&self) -> Option<u64>;
    /// This process's CPU-seconds so far.
    fn own_cpu_s(&self) -> Option<f64>;
    /// This process's resident memory now, KiB.
    fn own_rss_kib(&self) -> Option<u64>;
    /// CPU-seconds the whole machine spent so far: busy, of which softirq, of which steal.
    fn machine_cpu_s(&self) -> Option<MachineCpu>;
    /// Commands the servers' Redis has executed so far, when they share one.
    fn redis_commands(&self) -> Option<u64> {
        None
    }
}

/// Machine-wide CPU-seconds, all cores.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    /// Not idle.
    pub busy: f64,
    /// In softirq (network processing among others).
    pub softirq: f64,
    /// Stolen by the hypervisor.
    pub steal: f64,
}

/// p50, p99 and maximum of a latency distribution, nanoseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Values counted.
    pub count: u64,
}

impl Spread {
    /// The spread of what `h` recorded; `None` when it recorded nothing.
    pub(crate) fn of(h: &Histogram) -> Option<Self> {
        Some(Self {
            p50_ns: h.quantile(0.5)?,
            p99_ns: h.quantile(0.99)?,
            max_ns: h.max(),
            mean_ns: h.mean()?,
            count: h.count(),
        })
    }
}

/// What the join phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Joins {
    /// Participants started.
    pub started: u64,
    /// Participants whose join was acknowledged with `ok: true`.
    pub joined: u64,
    /// Participants that failed to connect or join (error, refusal, no ack in time).
    pub lost: u64,
    /// Failure reasons with their counts.
    pub failures: BTreeMap<String, u64>,
    /// Joined into the waiting room, admitted later.
    pub waited: u64,
    /// Still waiting when signaling started.
    pub never_admitted: u64,
    /// First connection start to last acknowledgement, seconds.
    pub wall_s: f64,
    /// Joined participants per second over `wall_s`.
    pub per_s: f64,
    /// TCP connect start → join acknowledgement (what a participant waits).
    pub latency: Option<Spread>,
    /// `consultation:join` sent → acknowledged.
    pub ack_latency: Option<Spread>,
    /// Server CPU-seconds over the join phase.
    pub server_cpu_s: Option<f64>,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kib: Option<u64>,
    /// Server RSS with every participant joined and idle (after --settle), KiB.
    pub rss_joined_kib: Option<u64>,
    /// (rss_joined − rss_before) / joined, bytes.
    pub rss_per_participant_bytes: Option<f64>,
    /// The load generator's own RSS with everyone joined (all client connections), KiB.
    pub generator_rss_kib: Option<u64>,
    /// Redis commands over the join phase per joined participant (nodes sharing Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_commands_per_join: Option<f64>,
    /// With a node killed after the joins: its participants' resumption.
    pub kill: Option<KillStorm>,
}

/// What the signal phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct Signals {
    /// Participants sending (both members of every pair that joined).
    pub senders: u64,
    /// senders × rate.
    pub offered_per_s: f64,
    /// Signals written to the sockets.
    pub sent: u64,
    /// Sends that failed (connection closed, buffer full).
    pub send_errors: u64,
    /// Signals received.
    pub received: u64,
    /// Received during the sending window, per second.
    pub delivered_per_s: f64,
    /// sent − received after the drain.
    pub lost: u64,
    /// Received later than --late.
    pub late: u64,
    /// Received out of sequence (a loss or a reordering) per sender.
    pub sequence_gaps: u64,
    /// Send → receive.
    pub latency: Option<Spread>,
    /// How far sends fell behind their schedule (the generator's own lag).
    pub send_lag: Option<Spread>,
    /// Sending window plus drain, seconds.
    pub window_s: f64,
    /// Server CPU-seconds over the window.
    pub server_cpu_s: Option<f64>,
    /// server_cpu_s / received, microseconds.
    pub server_cpu_us_per_signal: Option<f64>,
    /// This process's CPU-seconds over the window.
    pub generator_cpu_s: Option<f64>,
    /// Cores the whole machine kept busy on average over the window.
    pub machine_busy_cores: Option<f64>,
    /// Of which softirq.
    pub machine_softirq_cores: Option<f64>,
    /// Of which stolen by the hypervisor.
    pub machine_steal_cores: Option<f64>,
    /// Busy cores neither the server nor the generator was charged for: other processes, and
    /// kernel work (softirq) accounted to no process.
    pub unattributed_cores: Option<f64>,
    /// Other events received meanwhile (presence, session notices).
    pub other_events: u64,
    /// Redis commands over the window per signal received (nodes sharing Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_commands_per_signal: Option<f64>,
}

/// Counters shared by every connection's handler and the pacers.
struct Stats {
    epoch: Instant,
    late_ns: u64,
    latency: Histogram,
    lag: Histogram,
    sent: AtomicU64,
    send_errors: AtomicU64,
    received: AtomicU64,
    late: AtomicU64,
    gaps: AtomicU64,
    malformed: AtomicU64,
    other_events: AtomicU64,
}

impl Stats {
    fn new(epoch: Instant, late: Duration) -> Self {
        Self {
            epoch,
            late_ns: late.as_nanos() as u64,
            latency: Histogram::new(),
            lag: Histogram::new(),
            sent: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            received: AtomicU64::new(0),
            late: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            other_events: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// One participant's receiving side, touched by its reader task.
#[derive(Default)]
struct Inbox {
    admitted: AtomicBool,
    next_seq: AtomicU64,
}

#[derive(Deserialize)]
struct Delivered {
    payload: Stamp,
}

#[derive(Deserialize, Serialize)]
struct Stamp {
    /// Send time, ns since the generator's epoch.
    t: u64,
    /// Sequence number per sender.
    s: u64,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: Payload<'a>,
}

#[derive(Serialize)]
struct Payload<'a> {
    t: u64,
    s: u64,
    candidate: &'a str,
    #[serde(rename = "sdpMid")]
    sdp_mid: &'static str,
    #[serde(rename = "sdpMLineIndex")]
    sdp_m_line_index: u32,
}

/// The candidate text that makes a payload about `bytes` long (with 13-digit times and 6-digit
/// sequence numbers).
pub fn candidate_for(bytes: usize) -> String {
    let empty = serde_json::to_string(&Payload {
        t: 1_000_000_000_000,
        s: 100_000,
        candidate: "",
        sdp_mid: "0",
        sdp_m_line_index: 0,
    })
    .map_or(64, |s| s.len());
    let room = bytes.saturating_sub(empty).max(1);
    if room <= CANDIDATE.len() {
        CANDIDATE[..room].to_owned()
    } else {
        let mut text = String::with_capacity(room);
        text.push_str(CANDIDATE);
        text.push_str(" x");
        while text.len() < room {
            text.push('0');
        }
        text
    }
}

fn on_event(inbox: &Inbox, stats: &Stats, name: &str, data: &RawValue) {
    match name {
        "signal" => {
            let now = stats.now_ns();
            match serde_json::from_str::<Delivered>(data.get()) {
                Ok(d) => {
                    let latency = now.saturating_sub(d.payload.t);
                    stats.latency.record(latency);
                    if latency > stats.late_ns {
                        stats.late.fetch_add(1, Ordering::Relaxed);
                    }
                    if inbox.next_seq.swap(d.payload.s + 1, Ordering::Relaxed) != d.payload.s {
                        stats.gaps.fetch_add(1, Ordering::Relaxed);
                    }
                    stats.received.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        "consultation:admitted" => inbox.admitted.store(true, Ordering::Relaxed),
        _ => {
            stats.other_events.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Member {
    client: Client,
    participant_id: String,
    resume_token: String,
    inbox: Arc<Inbox>,
    waiting: bool,
}

struct JoinTimes {
    total: Histogram,
    ack: Histogram,
    last_done: std::sync::Mutex<Option<Instant>>,
}

impl JoinTimes {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            total: Histogram::new(),
            ack: Histogram::new(),
            last_done: std::sync::Mutex::new(None),
        })
    }
}

/// Whether `url` names a server on this machine's loopback interface, so that connections may
/// come from any 127.0.0.0/8 address.
pub fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.starts_with("127.") || rest.starts_with("localhost:") || rest == "localhost"
}

/// The source address for participant `index`.
fn source_for(index: usize, loopback: bool) -> Option<std::net::IpAddr> {
    loopback.then(|| {
        std::net::IpAddr::from([127, 0, 0, 2 + (index % usize::from(LOOPBACK_SOURCES)) as u8])
    })
}

/// A participant coming back after its node went: as whom, and where.
struct Resume {
    token: String,
    url: String,
}

async fn join_one(
    index: usize,
    plan: Arc<Plan>,
    mut config: Config,
    stats: Arc<Stats>,
    times: Arc<JoinTimes>,
    resume: Option<Resume>,
) -> Result<Member, String> {
    let started = Instant::now();
    let url = resume
        .as_ref()
        .map_or(plan.url_for(index), |r| r.url.as_str());
    config.local_address = source_for(index, is_loopback(url));
    let inbox = Arc::new(Inbox::default());
    let handler = {
        let inbox = inbox.clone();
        let stats = stats.clone();
        move |name: &str, data: &RawValue| on_event(&inbox, &stats, name, data)
    };
    let token = plan.tokens.get(index).ok_or("no token")?;
    let consultation = plan.consultations.get(index / 2).ok_or("no consultation")?;
    let client = Client::connect_with_handler(url, token, &config, handler)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let asked = Instant::now();
    let mut request = serde_json::json!({ "consultationId": consultation });
    if let Some(resume) = &resume {
        request["resumeToken"] = resume.token.clone().into();
    }
    let ack = client
        .call_ok("consultation:join", &request)
        .await
        .map_err(|e| format!("consultation:join: {e}"))?;
    let done = Instant::now();
    times.total.record((done - started).as_nanos() as u64);
    times.ack.record((done - asked).as_nanos() as u64);
    {
        let mut last = times.last_done.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some(last.map_or(done, |l| l.max(done)));
    }
    let participant_id = ack
        .get("participantId")
        .and_then(serde_json::Value::as_str)
        .ok_or("consultation:join: the ack has no participantId")?
        .to_owned();
    let waiting = ack
        .get("waiting")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if !waiting {
        inbox.admitted.store(true, Ordering::Relaxed);
    }
    let resume_token = ack
        .get("resumeToken")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Member {
        client,
        participant_id,
        resume_token,
        inbox,
        waiting,
    })
}

/// Runs the whole load against one server: joins, then (unless idle) signals.
pub async fn run(plan: Plan, shape: &Shape, probe: &dyn Probe) -> (Joins, Option<Signals>) {
    let stats = Arc::new(Stats::new(Instant::now(), shape.late));
    let participants = plan.tokens.len();
    let plan = Arc::new(plan);
    let config = Config::default();
    let times = JoinTimes::new();

    // Join phase.
    let rss_before_kib = probe.server_rss_kib();
    let cpu_before = probe.server_cpu_s();
    let redis_before = probe.redis_commands();
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(participants);
    for index in 0..participants {
        let due = t0 + Duration::from_secs_f64(index as f64 / shape.join_rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        handles.push(tokio::spawn(join_one(
            index,
            plan.clone(),
            config.clone(),
            stats.clone(),
            times.clone(),
            None,
        )));
    }
    let mut members: Vec<Option<Member>> = Vec::with_capacity(participants);
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for handle in handles {
        match handle.await {
            Ok(Ok(member)) => members.push(Some(member)),
            Ok(Err(reason)) => {
                *failures.entry(reason).or_default() += 1;
                members.push(None);
            }
            Err(e) => {
                *failures.entry(format!("task: {e}")).or_default() += 1;
                members.push(None);
            }
        }
    }
    eprintln!(
        "  joined {} of {participants} in {:.1} s",
        members.iter().flatten().count(),
        (Instant::now() - t0).as_secs_f64()
    );
    let server_cpu_join = probe.server_cpu_s().zip(cpu_before).map(|(a, b)| a - b);
    let redis_join = probe.redis_commands().zip(redis_before).map(|(a, b)| a - b);
    let last_done = *times.last_done.lock().unwrap_or_else(|e| e.into_inner());
    let wall_s = last_done.map_or(0.0, |d| (d - t0).as_secs_f64());
    let joined = members.iter().flatten().count() as u64;

    // Waiting-room admissions.
    let admission_deadline = Instant::now() + ADMISSION_LIMIT;
    while members
        .iter()
        .flatten()
        .any(|m| !m.inbox.admitted.load(Ordering::Relaxed))
        && Instant::now() < admission_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let never_admitted = members
        .iter()
        .flatten()
        .filter(|m| !m.inbox.admitted.load(Ordering::Relaxed))
        .count() as u64;

    let kill = if shape.kill_node {
        kill_storm(&mut members, &plan, &config, &stats, probe).await
    } else {
        None
    };

    tokio::time::sleep(shape.settle).await;
    let rss_joined_kib = probe.server_rss_kib();
    let generator_rss_kib = probe.own_rss_kib();
    let joins = Joins {
        started: participants as u64,
        joined,
        lost: participants as u64 - joined,
        failures,
        waited: members.iter().flatten().filter(|m| m.waiting).count() as u64,
        never_admitted,
        wall_s,
        per_s: if wall_s > 0.0 {
            joined as f64 / wall_s
        } else {
            0.0
        },
        latency: Spread::of(&times.total),
        ack_latency: Spread::of(&times.ack),
        server_cpu_s: server_cpu_join,
        rss_before_kib,
        rss_joined_kib,
        rss_per_participant_bytes: rss_before_kib
            .zip(rss_joined_kib)
            .filter(|_| joined > 0)
            .map(|(before, after)| (after as f64 - before as f64) * 1024.0 / joined as f64),
        generator_rss_kib,
        redis_commands_per_join: redis_join
            .filter(|_| joined > 0)
            .map(|n| n as f64 / joined as f64),
        kill,
    };
    if shape.idle {
        return (joins, None);
    }
    let signals = signal(&members, shape, probe, &stats).await;
    (joins, Some(signals))
}

/// Kills the first node and brings its participants back on the others at once, each as the
/// same participant (its resume token); what it took.
async fn kill_storm(
    members: &mut [Option<Member>],
    plan: &Arc<Plan>,
    config: &Config,
    stats: &Arc<Stats>,
    probe: &dyn Probe,
) -> Option<KillStorm> {
    let (first, others) = plan.urls.split_first()?;
    let victims: Vec<usize> = (0..members.len())
        .filter(|&i| plan.url_for(i) == first && members[i].is_some())
        .collect();
    if others.is_empty() || !probe.kill_first_node() {
        return None;
    }
    let killed = Instant::now();
    let times = JoinTimes::new();
    let mut handles = Vec::with_capacity(victims.len());
    for &i in &victims {
        let Some(gone) = members[i].take() else {
            continue;
        };
        let resume = Resume {
            token: gone.resume_token.clone(),
            url: others[i % others.len()].clone(),
        };
        drop(gone.client);
        let (plan, config, stats, times) =
            (plan.clone(), config.clone(), stats.clone(), times.clone());
        let expected = gone.participant_id;
        handles.push((
            i,
            expected,
            tokio::spawn(join_one(i, plan, config, stats, times, Some(resume))),
        ));
    }
    let (mut resumed, mut lost, mut other_participant) = (0, 0, 0);
    for (i, expected, handle) in handles {
        match handle.await {
            Ok(Ok(member)) => {
                if member.participant_id != expected {
                    other_participant += 1;
                }
                resumed += 1;
                members[i] = Some(member);
            }
            _ => lost += 1,
        }
    }
    let last = *times.last_done.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "  killed the first node: {resumed} of {} participants resumed on the others in {:.2} s",
        victims.len(),
        last.map_or(0.0, |l| (l - killed).as_secs_f64())
    );
    Some(KillStorm {
        participants: victims.len() as u64,
        resumed,
        lost,
        other_participant,
        all_back_s: last.map(|l| (l - killed).as_secs_f64()),
        latency: Spread::of(&times.total),
    })
}

/// One sending participant.
struct Sender {
    /// Position among all participants: spreads send times evenly over the period.
    slot: usize,
    client: Client,
    to: String,
    seq: u64,
}

async fn signal(
    members: &[Option<Member>],
    shape: &Shape,
    probe: &dyn Probe,
    stats: &Arc<Stats>,
) -> Signals {
    // Pairs where both joined and were admitted send to each other.
    let mut senders = Vec::new();
    for pair in members.chunks(2) {
        let [Some(a), Some(b)] = pair else { continue };
        if !a.inbox.admitted.load(Ordering::Relaxed) || !b.inbox.admitted.load(Ordering::Relaxed) {
            continue;
        }
        for (from, to) in [(a, b), (b, a)] {
            senders.push(Sender {
                slot: senders.len(),
                client: from.client.clone(),
                to: to.participant_id.clone(),
                seq: 0,
            });
        }
    }
    let count = senders.len();
    eprintln!(
        "  {count} participants sending {}/s each for {:.0} s",
        shape.rate,
        shape.duration.as_secs_f64()
    );
    let pacers = shape.pacers.max(1);
    let mut groups: Vec<Vec<Sender>> = (0..pacers).map(|_| Vec::new()).collect();
    for sender in senders {
        groups[sender.slot % pacers].push(sender);
    }
    let candidate: Arc<str> = candidate_for(shape.payload_bytes).into();
    let period = Duration::from_secs_f64(1.0 / shape.rate);

    let other_before = stats.other_events.load(Ordering::Relaxed);
    let cpu_before = probe.server_cpu_s();
    let redis_before = probe.redis_commands();
    let own_before = probe.own_cpu_s();
    let machine_before = probe.machine_cpu_s();
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + shape.duration;
    let tasks: Vec<_> = groups
        .into_iter()
        .map(|group| {
            let stats = stats.clone();
            let candidate = candidate.clone();
            tokio::spawn(pace(group, count, start, end, period, candidate, stats))
        })
        .collect();
    for task in tasks {
        // A panicking pacer shows as missing sends.
        let _ = task.await;
    }
    tokio::time::sleep_until(end).await;
    let received_in_window = stats.received.load(Ordering::Relaxed);
    let drain_deadline = Instant::now() + shape.drain;
    while stats.received.load(Ordering::Relaxed) < stats.sent.load(Ordering::Relaxed)
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let window_s = (Instant::now() - start).as_secs_f64();
    let server_cpu_s = probe.server_cpu_s().zip(cpu_before).map(|(a, b)| a - b);
    let redis_commands = probe.redis_commands().zip(redis_before).map(|(a, b)| a - b);
    let generator_cpu_s = probe.own_cpu_s().zip(own_before).map(|(a, b)| a - b);
    let machine = probe
        .machine_cpu_s()
        .zip(machine_before)
        .map(|(a, b)| MachineCpu {
            busy: (a.busy - b.busy) / window_s,
            softirq: (a.softirq - b.softirq) / window_s,
            steal: (a.steal - b.steal) / window_s,
        });
    let sent = stats.sent.load(Ordering::Relaxed);
    let received = stats.received.load(Ordering::Relaxed);
    Signals {
        senders: count as u64,
        offered_per_s: count as f64 * shape.rate,
        sent,
        send_errors: stats.send_errors.load(Ordering::Relaxed),
        received,
        delivered_per_s: received_in_window as f64 / shape.duration.as_secs_f64(),
        lost: sent.saturating_sub(received),
        late: stats.late.load(Ordering::Relaxed),
        sequence_gaps: stats.gaps.load(Ordering::Relaxed),
        latency: Spread::of(&stats.latency),
        send_lag: Spread::of(&stats.lag),
        window_s,
        server_cpu_s,
        server_cpu_us_per_signal: server_cpu_s
            .filter(|_| received > 0)
            .map(|s| s * 1e6 / received as f64),
        generator_cpu_s,
        machine_busy_cores: machine.map(|m| m.busy),
        machine_softirq_cores: machine.map(|m| m.softirq),
        machine_steal_cores: machine.map(|m| m.steal),
        unattributed_cores: machine
            .zip(server_cpu_s)
            .zip(generator_cpu_s)
            .map(|((m, server), own)| m.busy - (server + own) / window_s),
        other_events: stats.other_events.load(Ordering::Relaxed) - other_before,
        redis_commands_per_signal: redis_commands
            .filter(|_| received > 0)
            .map(|n| n as f64 / received as f64),
    }
}

/// Sends each sender's signals on schedule: sender in slot k at start + (round + k / total) ×
/// period, until `end`.
async fn pace(
    mut group: Vec<Sender>,
    total: usize,
    start: Instant,
    end: Instant,
    period: Duration,
    candidate: Arc<str>,
    stats: Arc<Stats>,
) {
    let total = total.max(1) as f64;
    let mut round = 0u32;
    'rounds: loop {
        let round_start = start + period * round;
        for sender in &mut group {
            let due = round_start + period.mul_f64(sender.slot as f64 / total);
            if due >= end {
                break 'rounds;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let sent_at = stats.now_ns();
            stats
                .lag
                .record((Instant::now().saturating_duration_since(due)).as_nanos() as u64);
            let message = Outgoing {
                to: &sender.to,
                kind: "candidate",
                payload: Payload {
                    t: sent_at,
                    s: sender.seq,
                    candidate: &candidate,
                    sdp_mid: "0",
                    sdp_m_line_index: 0,
                },
            };
            match sender.client.emit("signal", &message).await {
                Ok(()) => {
                    sender.seq += 1;
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        round += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_len(bytes: usize) -> usize {
        let candidate = candidate_for(bytes);
        serde_json::to_string(&Payload {
            t: 1_234_567_890_123,
            s: 123_456,
            candidate: &candidate,
            sdp_mid: "0",
            sdp_m_line_index: 0,
        })
        .unwrap()
        .len()
    }

    #[test]
    fn loopback_targets_get_spread_source_addresses() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://localhost:8080"));
        assert!(!is_loopback("http://10.0.0.5:8080"));
        assert_eq!(source_for(0, true), Some([127, 0, 0, 2].into()));
        assert_eq!(source_for(17, true), Some([127, 0, 0, 3].into()));
        assert_eq!(source_for(17, false), None);
    }

    #[test]
    fn payloads_have_about_the_requested_size() {
        for bytes in [100, 200, 1_000, 60_000] {
            let len = payload_len(bytes);
            assert!(len.abs_diff(bytes) <= 2, "{bytes} → {len}");
        }
    }

    #[test]
    fn receivers_read_the_stamp_of_what_senders_write() {
        // The epoch is a second ago: a signal stamped 0 is a second old.
        let epoch = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
        let stats = Stats::new(epoch, Duration::from_millis(100));
        let inbox = Inbox::default();
        let relayed = |t: u64, s: u64| {
            let payload = serde_json::to_string(&Payload {
                t,
                s,
                candidate: "c",
                sdp_mid: "0",
                sdp_m_line_index: 0,
            })
            .unwrap();
            RawValue::from_string(format!(
                r#"{{"from":"p1","type":"candidate","payload":{payload}}}"#
            ))
            .unwrap()
        };
        // Sent "now", then one sent long ago (late), then a gap in the sequence.
        on_event(&inbox, &stats, "signal", &relayed(stats.now_ns(), 0));
        on_event(&inbox, &stats, "signal", &relayed(0, 1));
        on_event(&inbox, &stats, "signal", &relayed(0, 3));
        on_event(&inbox, &stats, "participant:joined", RawValue::NULL);
        on_event(&inbox, &stats, "consultation:admitted", RawValue::NULL);
        on_event(&inbox, &stats, "signal", RawValue::NULL);
        assert_eq!(stats.received.load(Ordering::Relaxed), 3);
        assert_eq!(stats.late.load(Ordering::Relaxed), 2);
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 1);
        assert_eq!(stats.other_events.load(Ordering::Relaxed), 1);
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
        assert!(inbox.admitted.load(Ordering::Relaxed));
        assert_eq!(stats.latency.count(), 3);
    }

    #[test]
    fn pairs_cross_nodes_unless_asked_to_stay_on_one() {
        let mut plan = Plan {
            urls: vec!["n0".into(), "n1".into(), "n2".into()],
            same_node: false,
            tokens: Vec::new(),
            consultations: Vec::new(),
        };
        let nodes = |plan: &Plan| {
            (0..6)
                .map(|i| plan.url_for(i).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(nodes(&plan), ["n0", "n1", "n1", "n2", "n2", "n0"]);
        plan.same_node = true;
        assert_eq!(nodes(&plan), ["n0", "n0", "n1", "n1", "n2", "n2"]);
        plan.urls.truncate(1);
        assert!((0..6).all(|i| plan.url_for(i) == "n0"));
    }
}
