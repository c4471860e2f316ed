//! `wakili-bench push`: FCM HTTP v1 throughput of Wakili's sender beside a bare HTTP/2 loop, both
//! against the local FCM in a child process.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde::Serialize;
use wakili_push::{
    FcmSender, Kind, MessageOptions, Notification, Platform,
    message::fcm_body,
    oauth::{ServiceAccount, TokenSource},
    verdict::Verdict,
};
use wakili_testkit::fcm::{FakeFcm, TestAccount};

use crate::{
    cli::{PushArgs, PushFakeArgs},
    process::{self, ChildGuard},
    report::Machine,
};

/// The project the local FCM serves.
const PROJECT: &str = "wakili-bench";
/// Distinct devices the messages go to.
const DEVICES: u64 = 1000;

/// One run's figures.
#[derive(Debug, Serialize)]
struct Run {
    name: &'static str,
    messages: u64,
    accepted: u64,
    seconds: f64,
    per_second: f64,
    /// CPU of this process (the sender), seconds and cores.
    sender_cpu_s: f64,
    sender_cores: f64,
    sender_cpu_us_per_message: f64,
    /// CPU of the local FCM (the child).
    server_cpu_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    messages: u64,
    concurrency: usize,
    runs: Vec<Run>,
    target_per_second: f64,
    /// The paced run (or else the unpaced one) reached the target under one core.
    target_met: bool,
}

/// Runs the benchmark; `Ok(false)` when a run lost messages.
pub fn run(args: &PushArgs) -> anyhow::Result<bool> {
    if args.messages == 0 || args.concurrency == 0 || args.concurrency > 4096 {
        bail!("--messages must be positive and --concurrency between 1 and 4096");
    }
    let account = TestAccount::generate(PROJECT);
    let dir = tempfile::tempdir()?;
    let account_file = dir.path().join("account.json");
    std::fs::write(
        &account_file,
        serde_json::json!({
            "json": account.json,
            "public_pem": account.public_pem,
            "client_email": account.client_email,
            "project_id": account.project_id,
        })
        .to_string(),
    )?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut child = ChildGuard::spawn(
        "local FCM",
        Command::new(exe)
            .arg("push-fake-fcm")
            .arg("--account")
            .arg(&account_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    let (stdout, _) = child.take_output();
    let mut line = String::new();
    BufReader::new(stdout.context("no stdout from the local FCM")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening ")
        .context("the local FCM did not say where it listens")?
        .to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (tps, _) = process::clock_ticks_per_second();
    let server_pid = child.pid();
    let me = std::process::id();
    let runs = runtime.block_on(async {
        let account = ServiceAccount::from_json(&account.json)?;
        let tokens = Arc::new(TokenSource::new(
            account,
            Some(format!("{base}/token")),
            Duration::from_secs(10),
        )?);
        let sender = FcmSender::new(
            &base,
            PROJECT,
            Arc::clone(&tokens),
            Duration::from_secs(10),
            wakili_core::Clock::system(),
        )?;
        // Warm up (connection, token) outside the measurement.
        wakili(&sender, 2_000, args.concurrency, None).await;
        reference(&base, &tokens, 2_000, args.concurrency).await?;
        let mut runs = Vec::new();
        let mut names = vec!["wakili", "reference"];
        if args.rate > 0 {
            names.push("wakili-paced");
        }
        for name in names {
            let (cpu0, server0) = (process::cpu_ticks(me)?, process::cpu_ticks(server_pid)?);
            let started = Instant::now();
            let accepted = match name {
                "wakili" => wakili(&sender, args.messages, args.concurrency, None).await,
                "wakili-paced" => {
                    wakili(&sender, args.messages, args.concurrency, Some(args.rate)).await
                }
                _ => reference(&base, &tokens, args.messages, args.concurrency).await?,
            };
            let seconds = started.elapsed().as_secs_f64();
            let (cpu1, server1) = (process::cpu_ticks(me)?, process::cpu_ticks(server_pid)?);
            let sender_cpu_s = (cpu1 - cpu0) as f64 / tps as f64;
            let messages = args.messages;
            runs.push(Run {
                name,
                messages,
                accepted,
                seconds,
                per_second: accepted as f64 / seconds,
                sender_cpu_s,
                sender_cores: sender_cpu_s / seconds,
                sender_cpu_us_per_message: sender_cpu_s * 1e6 / args.messages as f64,
                server_cpu_s: (server1 - server0) as f64 / tps as f64,
            });
        }
        if args.outbox > 0 {
            let db_dir = tempfile::tempdir()?;
            let db = wakili_db::connect(
                &format!("sqlite://{}", db_dir.path().join("outbox.db").display()),
                &wakili_db::PoolOptions::default(),
            )
            .await?;
            queue(&db, args.outbox).await?;
            let push = wakili_push::PushService::new(
                wakili_push::Stores::of(&db),
                Some(sender.clone()),
                outbox_config(args.concurrency),
                wakili_core::Clock::system(),
            );
            let (cpu0, server0) = (process::cpu_ticks(me)?, process::cpu_ticks(server_pid)?);
            let started = Instant::now();
            let mut sent = 0u64;
            loop {
                let pass = push.deliver_due().await?;
                sent += pass.sent as u64;
                if pass.claimed == 0 {
                    break;
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            let (cpu1, server1) = (process::cpu_ticks(me)?, process::cpu_ticks(server_pid)?);
            let sender_cpu_s = (cpu1 - cpu0) as f64 / tps as f64;
            runs.push(Run {
                name: "outbox",
                messages: args.outbox,
                accepted: sent,
                seconds,
                per_second: sent as f64 / seconds,
                sender_cpu_s,
                sender_cores: sender_cpu_s / seconds,
                sender_cpu_us_per_message: sender_cpu_s * 1e6 / args.outbox as f64,
                server_cpu_s: (server1 - server0) as f64 / tps as f64,
            });
        }
        anyhow::Ok(runs)
    })?;
    child.ensure_running()?;
    let ok = runs.iter().all(|r| r.accepted == r.messages);
    // The target is about the sender: the paced run, or else the unpaced one.
    let target = 10_000.0;
    let report = Report {
        machine: Machine::detect_basic(),
        messages: args.messages,
        concurrency: args.concurrency,
        target_met: runs
            .iter()
            .rfind(|r| r.name == "wakili-paced" || r.name == "wakili")
            .is_some_and(|r| r.per_second >= target * 0.98 && r.sender_cores < 1.0),
        target_per_second: target,
        runs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(ok)
}

fn text(r: &Report) -> String {
    let mut out = format!(
        "wakili-bench push: {} messages per run, {} in flight over HTTP/2, to the local FCM\n\
         machine: {} ({} cores), kernel {}\n\n\
         {:<10} {:>10} {:>8} {:>11} {:>14} {:>13} {:>16} {:>14}\n",
        r.messages,
        r.concurrency,
        r.machine.cpu_model,
        r.machine.cores,
        r.machine.kernel,
        "run",
        "accepted",
        "seconds",
        "messages/s",
        "sender CPU s",
        "sender cores",
        "µs CPU/message",
        "FCM CPU s",
    );
    for run in &r.runs {
        out.push_str(&format!(
            "{:<10} {:>10} {:>8.2} {:>11.0} {:>14.2} {:>13.2} {:>16.1} {:>14.2}\n",
            run.name,
            run.accepted,
            run.seconds,
            run.per_second,
            run.sender_cpu_s,
            run.sender_cores,
            run.sender_cpu_us_per_message,
            run.server_cpu_s,
        ));
    }
    out.push_str(&format!(
        "\nwakili: messages built per notification (android/apns/webpush blocks), OAuth2 token \
         source, answers classified.\nreference: prebuilt bodies, one fixed token, bare reqwest.\n\
         wakili-paced: Wakili's sender held to --rate messages/s.\n\
         outbox: queued rows through the worker's pass (lease, send, record) on SQLite; CPU \
         includes the database.\n\
         target: {:.0}/s with the sender under one core: {}\n",
        r.target_per_second,
        if r.target_met { "met" } else { "NOT met" }
    ));
    out
}

fn notification(i: u64) -> (Notification, Platform) {
    let platform = match i % 3 {
        0 => Platform::Android,
        1 => Platform::Ios,
        _ => Platform::Web,
    };
    let consultation = format!("0190c6e2-7a3b-7000-8000-{:012}", i % DEVICES);
    let n = Notification {
        kind: Kind::IncomingCall,
        title: Some("Incoming video consultation".into()),
        body: Some("Amina Odhiambo is calling you".into()),
        data: BTreeMap::from([
            ("action".into(), "join_call".into()),
            ("consultationId".into(), consultation.clone()),
            ("callerName".into(), "Amina Odhiambo".into()),
            ("callType".into(), "video".into()),
        ]),
        ttl_seconds: 30,
        collapse_key: Some(format!("call-{consultation}")),
    };
    (n, platform)
}

/// Wakili's path: each message built from its notification and sent by [`FcmSender`], as fast
/// as possible or paced at `rate` messages/s.
async fn wakili(sender: &FcmSender, messages: u64, concurrency: usize, rate: Option<u64>) -> u64 {
    let start = tokio::time::Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let options = MessageOptions {
        android_channel: "consultations".into(),
    };
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, accepted, sender, options) = (
            Arc::clone(&next),
            Arc::clone(&accepted),
            sender.clone(),
            options.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= messages {
                    break;
                }
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due).await;
                }
                let (n, platform) = notification(i);
                let id = format!("0190c6e2-7a3b-7000-9000-{i:012}");
                let token = format!("bench-device-{}", i % DEVICES);
                let Ok(body) = fcm_body(&n, &id, &token, platform, &options, chrono::Utc::now())
                else {
                    continue;
                };
                if let Verdict::Delivered(_) = sender.send(Bytes::from(body)).await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    accepted.load(Ordering::Relaxed)
}

/// The floor: prebuilt bodies posted by a bare reqwest HTTP/2 client with one fixed token.
async fn reference(
    base: &str,
    tokens: &TokenSource,
    messages: u64,
    concurrency: usize,
) -> anyhow::Result<u64> {
    let token = tokens.token().await?;
    let client = reqwest::Client::builder().http2_prior_knowledge().build()?;
    let url: Arc<str> = format!("{base}/v1/projects/{PROJECT}/messages:send").into();
    let options = MessageOptions {
        android_channel: "consultations".into(),
    };
    let now = chrono::Utc::now();
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..DEVICES)
            .map(|i| {
                let (n, platform) = notification(i);
                let body = fcm_body(
                    &n,
                    &format!("0190c6e2-7a3b-7000-9000-{i:012}"),
                    &format!("bench-device-{i}"),
                    platform,
                    &options,
                    now,
                );
                Bytes::from(body.unwrap_or_default())
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, accepted, client, url, bodies, token) = (
            Arc::clone(&next),
            Arc::clone(&accepted),
            client.clone(),
            Arc::clone(&url),
            Arc::clone(&bodies),
            Arc::clone(&token),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= messages {
                    break;
                }
                let body = bodies[(i % DEVICES) as usize].clone();
                let sent = client
                    .post(&*url)
                    .bearer_auth(&*token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                if let Ok(response) = sent {
                    let ok = response.status().is_success();
                    if response.bytes().await.is_ok() && ok {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(accepted.load(Ordering::Relaxed))
}

/// The hidden child: serves the local FCM until killed.
pub fn serve_fake(args: &PushFakeArgs) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(&args.account)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let account = TestAccount {
        json: field("json"),
        public_pem: field("public_pem"),
        client_email: field("client_email"),
        project_id: field("project_id"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let fcm = FakeFcm::start_with(&account, false).await?;
        println!("listening {}", fcm.base_url());
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })?;
    Ok(true)
}

/// `n` queued notifications to `n` devices, as the service writes them.
async fn queue(db: &wakili_db::Db, n: u64) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let mut batch = Vec::new();
    for i in 0..n {
        let (notification, platform) = notification(i);
        let mut notification = notification;
        notification.kind = Kind::Reminder;
        batch.push(wakili_db::NewNotification {
            id: wakili_core::new_id(),
            user_id: format!("user-{i}"),
            device_token: format!("bench-device-{i}"),
            platform: platform.as_str().into(),
            kind: notification.kind.as_str().into(),
            consultation_id: None,
            payload: serde_json::to_string(&notification)?,
            due_at: now,
            expires_at: None,
        });
        if batch.len() == 5_000 {
            db.enqueue(&batch, now).await?;
            batch.clear();
        }
    }
    db.enqueue(&batch, now).await?;
    Ok(())
}

fn outbox_config(concurrency: usize) -> wakili_push::PushConfig {
    let mut config =
        wakili_push::PushConfig::from_settings(&wakili_settings::PushSettings::default());
    config.concurrency = concurrency;
    config.per_device_per_minute = 1_000;
    config
}
