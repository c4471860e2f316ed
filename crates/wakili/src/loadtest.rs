//! `wakili loadtest`: runs the load-test engine from this process, or asks the server to run it
//! (with an admin token) and watches; prints a progress line while it runs and a table (or JSON)
//! at the end.

use std::{io::IsTerminal, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use wakili_loadtest::{Identity, Limits, Live, Params, Progress, Report};

use crate::cli::Loadtest;

/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub async fn run(flags: Loadtest) -> anyhow::Result<()> {
    let params = Params {
        participants: flags.participants,
        room_size: flags.room_size,
        ramp_up: flags.ramp_up,
        duration: flags.duration,
        message_interval: flags.message_interval,
        join_interval: flags.join_interval,
    };
    let problems = params.problems(&Limits::CLI);
    if !problems.is_empty() {
        bail!("invalid parameters: {}", problems.join("; "));
    }
    let url = flags.url.trim_end_matches('/').to_owned();
    let report = if let Some(admin) = &flags.admin_token {
        remote(&url, admin, &params).await?
    } else {
        let secret = match (&flags.token_secret, &flags.token_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .trim()
                .to_owned(),
            (None, None) => bail!("pass --token-secret, --token-secret-file or --admin-token"),
        };
        local(&url, secret.as_bytes(), params).await?
    };
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if report.error_count > 0 {
        bail!("{} failures (see the errors above)", report.error_count);
    }
    Ok(())
}

/// Prints progress lines: overwritten in place on a terminal, one every 5 s otherwise.
struct Printer {
    terminal: bool,
    count: u64,
}

impl Printer {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            count: 0,
        }
    }

    fn show(&mut self, progress: &Progress) {
        if self.terminal {
            eprint!("\r{}\x1b[K", progress.line());
        } else if self.count.is_multiple_of(5) {
            eprintln!("{}", progress.line());
        }
        self.count += 1;
    }

    fn finish(&self, progress: &Progress) {
        if self.terminal {
            eprintln!("\r{}\x1b[K", progress.line());
        } else {
            eprintln!("{}", progress.line());
        }
    }
}

async fn local(url: &str, secret: &[u8], params: Params) -> anyhow::Result<Report> {
    let run_tag = format!(
        "{:x}{:x}",
        chrono::Utc::now().timestamp() & 0xff_ffff,
        std::process::id()
    );
    let identity = Identity::hs256(secret, &run_tag).map_err(anyhow::Error::msg)?;
    let live = Arc::new(Live::new(params, chrono::Utc::now()));
    let task = tokio::spawn(wakili_loadtest::run(
        url.to_owned(),
        identity,
        Arc::clone(&live),
    ));
    let mut printer = Printer::new();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tokio::pin!(task);
    loop {
        tokio::select! {
            report = &mut task => {
                printer.finish(&live.progress());
                return report.context("the load test failed");
            }
            _ = tick.tick() => printer.show(&live.progress()),
        }
    }
}

async fn remote(url: &str, admin: &str, params: &Params) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let endpoint = format!("{url}/api/v1/performance/load-tests");
    let response = http
        .post(&endpoint)
        .bearer_auth(admin)
        .json(params)
        .send()
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        bail!("POST {endpoint}: {status}: {text}");
    }
    let mut printer = Printer::new();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let response = http
            .get(&endpoint)
            .bearer_auth(admin)
            .send()
            .await
            .with_context(|| format!("GET {endpoint}"))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .with_context(|| format!("GET {endpoint}: not JSON"))?;
        if !status.is_success() {
            bail!("GET {endpoint}: {status}: {body}");
        }
        let progress: Progress = serde_json::from_value(body["progress"].clone())
            .with_context(|| format!("GET {endpoint}: no progress in {body}"))?;
        if body["state"] == "finished" {
            printer.finish(&progress);
            return serde_json::from_value(body["report"].clone())
                .with_context(|| format!("GET {endpoint}: no report in {body}"));
        }
        printer.show(&progress);
    }
}
