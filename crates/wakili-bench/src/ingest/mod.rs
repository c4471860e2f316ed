//! `wakili-bench ingest`: a recording uploaded in chunks over HTTP to `wakili serve`, which
//! encrypts and stores each one durably, compared in the same run with what this machine can do
//! at best: seal the same bytes in process, and write them to the same filesystem.
//!
//! Order: generate the data and its digests (untimed), start the server, measure the references
//! (crypto on one core and on all, then disk), then one recording end to end: consent over
//! signaling, create, PUT every chunk (timed), complete (timed), download (timed, checked by
//! SHA-256) and the signed manifest (checked against the upload).

mod data;
mod recording;
mod reference;
mod report;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{
    cli::{IngestArgs, SignalServer, format_bytes},
    process,
    report::Machine,
    signal::target::{self, Launch, Target},
};
use data::Media;
use recording::{Api, Call};
use report::{Load, Report, ServerCost};

/// Bytes in a GiB.
const GIB: f64 = 1_073_741_824.0;

/// Runs the benchmark and prints the report; `Ok(false)` when the run failed or what came back
/// is not what was sent.
pub fn run(args: &IngestArgs) -> anyhow::Result<bool> {
    args.validate()?;
    let deadline = Instant::now() + args.timeout;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let machine = Machine::detect_basic();
    let ticks_per_s = machine.clock_ticks_per_s as f64;

    let size = usize::try_from(args.size).context("--size: too large for this machine")?;
    let chunk = usize::try_from(args.chunk).context("--chunk: too large for this machine")?;
    eprintln!(
        "[ingest] generating {} and its SHA-256s",
        format_bytes(args.size)
    );
    let media = Media::generate(size, chunk, cores, seed());

    let launch = Launch {
        url: args.url.as_deref(),
        jwt_secret_file: args.jwt_secret_file.as_deref(),
        wakili_bin: args.wakili_bin.as_deref(),
        dir_prefix: "wakili-bench-ingest-",
        // A handful of keep-alive connections: the defaults admit them.
        connections: None,
        database_url: None,
        redis_url: None,
        secrets_from: None,
        worker_threads: None,
    };
    let mut target = runtime.block_on(target::start(SignalServer::Wakili, &launch))?;
    let disk_dir = disk_dir(args, &target)?;
    eprintln!("[ingest] server ready at {}", target.url);

    let mut report = Report {
        machine,
        load: Load {
            size_bytes: args.size,
            chunk_bytes: args.chunk,
            chunks: media.chunk_count(),
            parallel: args.parallel,
            server: target.description.clone(),
            client_threads: cores,
        },
        crypto_one_core: None,
        crypto_all_cores: None,
        disk: None,
        recording_id: None,
        signaling_recording_id: None,
        ingest: None,
        verdict: None,
        server: None,
        complete: None,
        download: None,
        manifest: None,
        client_upload_cpu_s: None,
        machine_busy_before_cores: machine_busy_cores(Duration::from_secs(1), ticks_per_s),
        others_upload_cores: None,
        error: None,
    };
    if let Err(e) = references(&mut report, &media, cores, &disk_dir) {
        report.error = Some(format!("{e:#}"));
    } else {
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = runtime.block_on(async {
            tokio::time::timeout(
                left,
                ingest(&mut report, &mut target, &media, args, ticks_per_s),
            )
            .await
            .unwrap_or_else(|_| {
                bail!(
                    "not finished within --timeout {}",
                    humantime::format_duration(args.timeout)
                )
            })
        });
        if let Err(e) = outcome {
            report.error = Some(format!("{e:#}"));
        }
    }
    if let Some(pid) = target.pid()
        && let Some(cost) = report.server.as_mut()
        && let Ok(memory) = process::memory(pid)
    {
        cost.rss_peak_mib = memory.peak_kib as f64 / 1024.0;
        cost.rss_end_mib = memory.current_kib as f64 / 1024.0;
    }
    drop(target);
    runtime.shutdown_timeout(Duration::from_secs(1));
    let report = report.finish();
    if args.json {
        println!("{}", report.json()?);
    } else {
        print!("{}", report.text());
    }
    Ok(report.ok())
}

/// Cores the whole machine keeps busy over `window` (sleeping meanwhile).
fn machine_busy_cores(window: Duration, ticks_per_s: f64) -> Option<f64> {
    let before = process::machine_ticks().ok()?;
    std::thread::sleep(window);
    let after = process::machine_ticks().ok()?;
    Some(after.busy.saturating_sub(before.busy) as f64 / ticks_per_s / window.as_secs_f64())
}

/// A seed that differs between runs, so a server cannot serve a previous run's chunks.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Where the disk reference writes: `--disk-dir`, the started server's data directory, or the
/// data directory whose `secrets/` holds `--jwt-secret-file`.
fn disk_dir(args: &IngestArgs, target: &Target) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.disk_dir {
        return Ok(dir.clone());
    }
    if let Some(dir) = &target.data_dir {
        return Ok(dir.clone());
    }
    args.jwt_secret_file
        .as_deref()
        .and_then(Path::parent)
        .filter(|secrets| secrets.file_name().is_some_and(|n| n == "secrets"))
        .and_then(Path::parent)
        .map(Path::to_owned)
        .context(
            "--disk-dir: needed with --url when --jwt-secret-file is not <data-dir>/secrets/…; \
             name a directory on the filesystem the server stores recordings on",
        )
}

/// The two references, filled into `report` as they are measured.
fn references(
    report: &mut Report,
    media: &Media,
    cores: usize,
    disk_dir: &Path,
) -> anyhow::Result<()> {
    eprintln!("[ingest] raw crypto on 1 core");
    report.crypto_one_core = Some(reference::crypto(media, 1)?);
    eprintln!("[ingest] raw crypto on {cores} cores");
    report.crypto_all_cores = Some(reference::crypto(media, cores)?);
    eprintln!("[ingest] disk write + fsync in {}", disk_dir.display());
    report.disk = Some(reference::disk(disk_dir, media)?);
    Ok(())
}

/// One recording end to end, filled into `report` step by step.
async fn ingest(
    report: &mut Report,
    target: &mut Target,
    media: &Media,
    args: &IngestArgs,
    ticks_per_s: f64,
) -> anyhow::Result<()> {
    let (tokens, consultations, _) = target.prepare(1).await?;
    let (lawyer, client, consultation) = match (&tokens[..], &consultations[..]) {
        ([lawyer, client], [consultation]) => (lawyer, client, consultation),
        _ => bail!("preparing the consultation gave no tokens or no consultation"),
    };
    eprintln!("[ingest] consultation {consultation}: joining, recording, consenting");
    let call = Call::consent(&target.url, consultation, lawyer, client).await?;
    let api = Api::new(&target.url, lawyer, args.parallel)?;
    let created = api.create(consultation).await?;
    report.recording_id = Some(created.recording_id.clone());
    if created.recording_id != call.recording_id {
        report.signaling_recording_id = Some(call.recording_id.clone());
    }
    eprintln!(
        "[ingest] recording {}: uploading {} chunks, {} in flight",
        created.recording_id,
        media.chunk_count(),
        args.parallel
    );
    let pid = target.pid();
    let server_cpu = || pid.and_then(|p| process::cpu_ticks(p).ok());
    let own_cpu = || process::cpu_ticks(std::process::id()).ok();
    let machine_cpu = || process::machine_ticks().ok().map(|t| t.busy);
    let (server_before, own_before, machine_before) = (server_cpu(), own_cpu(), machine_cpu());
    let upload = api.upload(&created, media, args.parallel).await;
    let (server_after, own_after, machine_after) = (server_cpu(), own_cpu(), machine_cpu());
    target.ensure_running().context("during the upload")?;
    let upload = upload?;
    if let (Some(before), Some(after)) = (server_before, server_after) {
        let cpu_s = after.saturating_sub(before) as f64 / ticks_per_s;
        report.server = Some(ServerCost {
            upload_cpu_s: cpu_s,
            cpu_s_per_gib: cpu_s / (media.len() as f64 / GIB),
            upload_cores: cpu_s / upload.seconds.max(1e-9),
            rss_peak_mib: 0.0,
            rss_end_mib: 0.0,
        });
    }
    report.client_upload_cpu_s = own_before
        .zip(own_after)
        .map(|(b, a)| a.saturating_sub(b) as f64 / ticks_per_s);
    let spent = |before: Option<u64>, after: Option<u64>| {
        Some(after?.saturating_sub(before?) as f64 / ticks_per_s)
    };
    report.others_upload_cores = spent(machine_before, machine_after)
        .zip(spent(server_before, server_after))
        .zip(report.client_upload_cpu_s)
        .map(|((machine, server), client)| {
            (machine - server - client).max(0.0) / upload.seconds.max(1e-9)
        });
    report.ingest = Some(upload);

    eprintln!("[ingest] completing");
    report.complete = Some(api.complete(&created, media).await?);
    eprintln!("[ingest] downloading");
    report.download = Some(api.download(&created.recording_id, media).await?);
    report.manifest = Some(api.manifest(&created.recording_id, media).await?);
    call.hang_up().await;
    target.ensure_running().context("after the run")?;
    Ok(())
}
