//! Wakili's SFU as a child process (`wakili-bench sfu-server`), so its CPU time and memory are
//! read from /proc like Janus's, and the line protocol the benchmark drives it with: one JSON
//! object per line, requests on the child's stdin, replies and the SFU's offers on its stdout.

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Write},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast::error::RecvError, mpsc, oneshot};
use wakili_sfu::{Rid, Sfu, SfuConfig, SfuEvent, SfuHandle};

use super::{
    args::SfuServerArgs,
    recording::{RecorderCounters, Recording, SessionCheck},
};
use crate::{
    process::{self, ChildGuard},
    servers,
};

/// How long the child may take to bind and report its address.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How long one request may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(20);

/// What the benchmark asks of the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    /// `SfuHandle::join`, then `force_layer` when `layer` is given.
    Join {
        id: u64,
        room: String,
        participant: String,
        sdp: String,
        layer: Option<String>,
    },
    /// `SfuHandle::answer`.
    Answer {
        id: u64,
        room: String,
        participant: String,
        sdp: String,
    },
    /// The SFU's datagram counters and, when it records, the recorder's.
    Counters { id: u64 },
    /// `--record`: books a consultation; the reply's `room` is its id, the SFU room to use.
    Book { id: u64 },
    /// `--record`: starts recording `room` with these participants seated.
    Record {
        id: u64,
        room: String,
        publishers: Vec<String>,
        subscribers: Vec<String>,
    },
    /// `--record`: stops every recording, shuts the recorder down with `grace_ms`, and reads
    /// back what storage holds.
    Finish { id: u64, grace_ms: u64 },
}

/// The outcome of a request: what it asked for, or `error`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Datagrams dropped, datagrams the socket refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counters: Option<[u64; 2]>,
    /// The recorder's counters, when the child records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recorder: Option<RecorderCounters>,
    /// A booked room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    /// The recordings in storage once the recorder stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<SessionCheck>>,
}

/// What [`WakiliSfu::counters`] returns.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// Datagrams its socket refused.
    pub send_failures: u64,
    /// The recorder's, when the child records.
    pub recorder: Option<RecorderCounters>,
}

/// What the child says.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    /// The SFU runs; media goes to `addr`.
    Ready { addr: SocketAddr },
    /// The outcome of a request.
    Reply(Reply),
    /// The SFU renegotiates with `participant`.
    Offer {
        room: String,
        participant: String,
        sdp: String,
    },
}

/// Runs the child: the SFU on `--bind` (and its recorder with `--record`) until stdin closes.
pub fn serve(args: &SfuServerArgs) -> anyhow::Result<bool> {
    // Stdout carries the messages to the benchmark; the log goes to stderr, which the
    // benchmark keeps in a file and quotes when something fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let config = SfuConfig {
            bind: args.bind,
            // Janus runs without ICE-TCP too.
            ice_tcp: false,
            max_participants_per_room: args.max_participants,
            initial_estimate_bps: if args.no_bwe {
                None
            } else {
                SfuConfig::default().initial_estimate_bps
            },
            ..SfuConfig::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let sfu = Sfu::start(config, async {
            let _ = stopped.await;
        })
        .await
        .context("the SFU did not start")?;
        let recording = match &args.record {
            Some(dir) => Some(Arc::new(Recording::start(dir, &sfu).await?)),
            None => None,
        };
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        // Plain threads for stdin and stdout: the child's only other work is the SFU's task.
        let writer = std::thread::spawn(move || {
            let mut stdout = std::io::stdout().lock();
            while let Some(message) = outgoing.blocking_recv() {
                let Ok(line) = serde_json::to_string(&message) else {
                    continue;
                };
                if writeln!(stdout, "{line}").is_err() || stdout.flush().is_err() {
                    return;
                }
            }
        });
        let _ = out.send(Message::Ready {
            addr: sfu.local_addr(),
        });
        let mut events = sfu.events();
        let offers = out.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(SfuEvent::Offer {
                        room,
                        participant,
                        sdp,
                    }) => {
                        let _ = offers.send(Message::Offer {
                            room,
                            participant,
                            sdp,
                        });
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => eprintln!("sfu-server: {n} SFU events lost"),
                    Err(RecvError::Closed) => return,
                }
            }
        });
        let (lines_in, mut lines) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                if lines_in.send(line).is_err() {
                    return;
                }
            }
        });
        while let Some(line) = lines.recv().await {
            let request: Request =
                serde_json::from_str(&line).with_context(|| format!("not a request: {line}"))?;
            let (sfu, out, recording) = (sfu.clone(), out.clone(), recording.clone());
            tokio::spawn(async move {
                let reply = handle(&sfu, recording.as_deref(), request).await;
                let _ = out.send(Message::Reply(reply));
            });
        }
        let _ = stop.send(());
        drop(out);
        let _ = writer.join();
        Ok(true)
    })
}

async fn handle(sfu: &SfuHandle, recording: Option<&Recording>, request: Request) -> Reply {
    let outcome = |id, result: Result<Reply, String>| match result {
        Ok(reply) => Reply { id, ..reply },
        Err(error) => Reply {
            id,
            error: Some(error),
            ..Reply::default()
        },
    };
    let recording = recording.ok_or_else(|| "the child does not record (--record)".to_owned());
    match request {
        Request::Join {
            id,
            room,
            participant,
            sdp,
            layer,
        } => {
            let result = async {
                let answer = sfu.join(&room, &participant, &sdp).await?;
                if let Some(rid) = layer.as_deref().and_then(Rid::parse) {
                    sfu.force_layer(&room, &participant, Some(rid)).await?;
                }
                Ok::<_, wakili_sfu::SfuError>(Reply {
                    sdp: Some(answer.sdp),
                    ..Reply::default()
                })
            };
            outcome(id, result.await.map_err(|e| e.to_string()))
        }
        Request::Answer {
            id,
            room,
            participant,
            sdp,
        } => {
            let result = sfu.answer(&room, &participant, &sdp).await;
            outcome(
                id,
                result.map(|()| Reply::default()).map_err(|e| e.to_string()),
            )
        }
        Request::Counters { id } => Reply {
            id,
            counters: Some([sfu.dropped_datagrams(), sfu.send_failures()]),
            recorder: recording.ok().map(Recording::counters),
            ..Reply::default()
        },
        Request::Book { id } => {
            let result = match recording {
                Ok(r) => r.book().await.map_err(|e| format!("{e:#}")),
                Err(e) => Err(e),
            };
            outcome(
                id,
                result.map(|room| Reply {
                    room: Some(room),
                    ..Reply::default()
                }),
            )
        }
        Request::Record {
            id,
            room,
            publishers,
            subscribers,
        } => {
            let result = match recording {
                Ok(r) => r
                    .record(&room, &publishers, &subscribers)
                    .await
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(e),
            };
            outcome(id, result.map(|()| Reply::default()))
        }
        Request::Finish { id, grace_ms } => {
            let result = match recording {
                Ok(r) => r
                    .finish(Duration::from_millis(grace_ms))
                    .await
                    .map(|sessions| Reply {
                        sessions: Some(sessions),
                        recorder: Some(r.counters()),
                        ..Reply::default()
                    })
                    .map_err(|e| format!("{e:#}")),
                Err(e) => Err(e),
            };
            outcome(id, result)
        }
    }
}

/// An offer the SFU sent a participant.
#[derive(Debug)]
pub struct Offer {
    /// The room.
    pub room: String,
    /// Who must answer.
    pub participant: String,
    /// The SDP.
    pub sdp: String,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// The running child, seen from the benchmark.
pub struct WakiliSfu {
    /// Its command line.
    pub command_line: String,
    /// Its stderr.
    pub log: PathBuf,
    requests: std::sync::mpsc::Sender<String>,
    pending: Pending,
    next_id: AtomicU64,
}

impl WakiliSfu {
    /// Starts the child on `ip` (any port), its stderr in `dir`; returns the process (killed
    /// when dropped), the way to drive it, and the offers it will send.
    /// With `record`, the child records every room it is told to (`Record`), storing in
    /// `dir/recordings` (a data directory of its own).
    pub async fn start(
        ip: IpAddr,
        max_participants: u32,
        no_bwe: bool,
        record: bool,
        dir: &Path,
    ) -> anyhow::Result<(ChildGuard, Self, mpsc::UnboundedReceiver<Offer>)> {
        let exe = std::env::current_exe().context("cannot locate this executable")?;
        let mut command = Command::new(exe);
        command
            .arg("sfu-server")
            .args(["--bind", &SocketAddr::new(ip, 0).to_string()])
            .args(["--max-participants", &max_participants.to_string()])
            .args(no_bwe.then_some("--no-bwe"))
            .env("RUST_LOG", "warn");
        if record {
            command.arg("--record").arg(dir.join("recordings"));
        }
        let command_line = servers::describe(&command);
        let log = dir.join("wakili-sfu.log");
        let err = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        let mut process = ChildGuard::spawn("wakili sfu-server", &mut command)?;
        let stdin = process.take_stdin().context("no stdin pipe")?;
        let stdout = process.take_output().0.context("no stdout pipe")?;
        let pending: Pending = Arc::default();
        let (offers_in, offers) = mpsc::unbounded_channel();
        let (ready_in, ready) = oneshot::channel();
        let replies = pending.clone();
        std::thread::spawn(move || read_messages(stdout, ready_in, &replies, &offers_in));
        let (requests, to_child) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut stdin = stdin;
            for line in to_child {
                if stdin.write_all(line.as_bytes()).is_err() || stdin.flush().is_err() {
                    return;
                }
            }
        });
        let media = match tokio::time::timeout(STARTUP_LIMIT, ready).await {
            Ok(Ok(addr)) => addr,
            _ => {
                process.ensure_running().with_context(|| {
                    format!("sfu-server did not start:{}", process::log_tail(&log, 15))
                })?;
                bail!("sfu-server did not report its address within {STARTUP_LIMIT:?}");
            }
        };
        let server = Self {
            command_line: format!("{command_line} (media on {media})"),
            log,
            requests,
            pending,
            next_id: AtomicU64::new(1),
        };
        Ok((process, server, offers))
    }

    async fn call(&self, make: impl FnOnce(u64) -> Request) -> anyhow::Result<Reply> {
        self.call_within(make, REQUEST_LIMIT).await
    }

    async fn call_within(
        &self,
        make: impl FnOnce(u64) -> Request,
        limit: Duration,
    ) -> anyhow::Result<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(id, reply);
        let mut line = serde_json::to_string(&make(id))?;
        line.push('\n');
        self.requests
            .send(line)
            .map_err(|_| anyhow!("sfu-server's stdin is closed"))?;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(Reply { error: Some(e), .. })) => bail!("{e}"),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => bail!("sfu-server exited:{}", process::log_tail(&self.log, 15)),
            Err(_) => bail!("sfu-server did not answer within {limit:?}"),
        }
    }

    /// Joins `participant` with `sdp`, forcing `layer` when given; returns the answer.
    pub async fn join(
        &self,
        room: &str,
        participant: &str,
        sdp: String,
        layer: Option<&str>,
    ) -> anyhow::Result<String> {
        let reply = self
            .call(|id| Request::Join {
                id,
                room: room.to_owned(),
                participant: participant.to_owned(),
                sdp,
                layer: layer.map(str::to_owned),
            })
            .await?;
        reply.sdp.context("join: no answer in the reply")
    }

    /// Passes `participant`'s answer to the SFU's last offer.
    pub async fn answer(&self, room: &str, participant: &str, sdp: String) -> anyhow::Result<()> {
        self.call(|id| Request::Answer {
            id,
            room: room.to_owned(),
            participant: participant.to_owned(),
            sdp,
        })
        .await
        .map(|_| ())
    }

    /// The SFU's counters and the recorder's.
    pub async fn counters(&self) -> anyhow::Result<Counters> {
        let reply = self.call(|id| Request::Counters { id }).await?;
        let [_, send_failures] = reply
            .counters
            .ok_or_else(|| anyhow!("counters: unexpected reply {reply:?}"))?;
        Ok(Counters {
            send_failures,
            recorder: reply.recorder,
        })
    }

    /// Books a consultation in the recording child; its id, the room to join.
    pub async fn book(&self) -> anyhow::Result<String> {
        let reply = self.call(|id| Request::Book { id }).await?;
        reply.room.context("book: no room in the reply")
    }

    /// Starts recording `room` with these participants.
    pub async fn record(
        &self,
        room: &str,
        publishers: Vec<String>,
        subscribers: Vec<String>,
    ) -> anyhow::Result<()> {
        self.call(|id| Request::Record {
            id,
            room: room.to_owned(),
            publishers,
            subscribers,
        })
        .await
        .map(|_| ())
    }

    /// Stops every recording, waits up to `grace` for the recorder to store them, and returns
    /// what storage holds and the recorder's final counters.
    pub async fn finish(
        &self,
        grace: Duration,
    ) -> anyhow::Result<(Vec<SessionCheck>, RecorderCounters)> {
        let grace_ms = grace.as_millis() as u64;
        let finish = |id| Request::Finish { id, grace_ms };
        let reply = self.call_within(finish, grace + REQUEST_LIMIT).await?;
        match (reply.sessions, reply.recorder) {
            (Some(sessions), Some(counters)) => Ok((sessions, counters)),
            _ => bail!("finish: no recordings in the reply"),
        }
    }
}

fn read_messages(
    stdout: std::process::ChildStdout,
    ready: oneshot::Sender<SocketAddr>,
    pending: &Pending,
    offers: &mpsc::UnboundedSender<Offer>,
) {
    let mut ready = Some(ready);
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Ready { addr }) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(addr);
                }
            }
            Ok(Message::Reply(reply)) => {
                let waiter = pending.lock().ok().and_then(|mut p| p.remove(&reply.id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(reply);
                }
            }
            Ok(Message::Offer {
                room,
                participant,
                sdp,
            }) => {
                let _ = offers.send(Offer {
                    room,
                    participant,
                    sdp,
                });
            }
            Err(e) => eprintln!("sfu-server said something else ({e}): {line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_protocol_round_trips() {
        let request = Request::Join {
            id: 3,
            room: "r0".into(),
            participant: "s1".into(),
            sdp: "v=0".into(),
            layer: Some("f".into()),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert!(line.starts_with(r#"{"op":"join","id":3"#), "{line}");
        assert!(matches!(
            serde_json::from_str::<Request>(&line).unwrap(),
            Request::Join { id: 3, .. }
        ));
        let reply: Message =
            serde_json::from_str(r#"{"kind":"reply","id":4,"error":"no"}"#).unwrap();
        assert!(matches!(
            reply,
            Message::Reply(Reply {
                id: 4,
                error: Some(_),
                ..
            })
        ));
        let counters = Message::Reply(Reply {
            id: 5,
            counters: Some([1, 2]),
            recorder: Some(RecorderCounters {
                recorded_packets: 7,
                ..RecorderCounters::default()
            }),
            ..Reply::default()
        });
        let line = serde_json::to_string(&counters).unwrap();
        assert!(
            line.starts_with(r#"{"kind":"reply","id":5,"counters":[1,2]"#),
            "{line}"
        );
        match serde_json::from_str::<Message>(&line).unwrap() {
            Message::Reply(Reply {
                recorder: Some(r), ..
            }) => assert_eq!(r.recorded_packets, 7),
            other => panic!("{other:?}"),
        }
    }
}
