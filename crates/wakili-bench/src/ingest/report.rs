//! The figures of `wakili-bench ingest`: the ingest beside its two references, the target, and
//! what came back, printed as a table or as one JSON document.

use serde::Serialize;

use super::{
    recording::{Completed, Download, ManifestCheck, Upload},
    reference::{Disk, MIB, Pass},
};
use crate::{cli::format_bytes, report::Machine};

/// Share of the slower reference the ingest must reach.
pub const TARGET_RATIO: f64 = 0.6;
/// Cores busy with other processes above which the machine counts as shared.
const SHARED_MACHINE_CORES: f64 = 0.15;

/// The load.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Bytes ingested.
    pub size_bytes: u64,
    /// Bytes per chunk.
    pub chunk_bytes: u64,
    /// Chunks.
    pub chunks: usize,
    /// PUTs in flight.
    pub parallel: usize,
    /// The server's command line, or where it already ran.
    pub server: String,
    /// Worker threads of this process's HTTP client.
    pub client_threads: usize,
}

/// The server process during the chunk upload, when it is this benchmark's child.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    /// CPU-seconds (user + system, all threads) from the first PUT to the last answer.
    pub upload_cpu_s: f64,
    /// upload_cpu_s per GiB ingested.
    pub cpu_s_per_gib: f64,
    /// Cores it kept busy on average over the upload.
    pub upload_cores: f64,
    /// VmHWM at the end: peak resident memory since it started, MiB.
    pub rss_peak_mib: f64,
    /// VmRSS at the end, MiB.
    pub rss_end_mib: f64,
}

/// The ingest against the slower reference.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `crypto` or `disk`: the slower of the all-cores crypto and the disk reference.
    pub slower_reference: &'static str,
    /// Its MiB/s.
    pub reference_mib_per_s: f64,
    /// ingest ÷ reference.
    pub ratio: f64,
    /// [`TARGET_RATIO`].
    pub target_ratio: f64,
    /// ratio ≥ target.
    pub met: bool,
}

/// The whole document; what a failed run did not reach stays empty and `error` says why.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The load.
    pub load: Load,
    /// Sealing + SHA-256 on one thread.
    pub crypto_one_core: Option<Pass>,
    /// Sealing + SHA-256 on one thread per core.
    pub crypto_all_cores: Option<Pass>,
    /// Writing the data in 1 MiB writes plus one fsync, beside the server's data.
    pub disk: Option<Disk>,
    /// The recording created over REST.
    pub recording_id: Option<String>,
    /// The recording id signaling announced, when it is not the REST one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signaling_recording_id: Option<String>,
    /// The chunk PUTs.
    pub ingest: Option<Upload>,
    /// Ingest vs the slower reference.
    pub verdict: Option<Verdict>,
    /// The server's CPU and memory.
    pub server: Option<ServerCost>,
    /// `POST …/complete`.
    pub complete: Option<Completed>,
    /// The download, checked against the upload.
    pub download: Option<Download>,
    /// The signed manifest, checked against the upload.
    pub manifest: Option<ManifestCheck>,
    /// This process's CPU-seconds during the upload (it shares the cores with the server).
    pub client_upload_cpu_s: Option<f64>,
    /// Cores the machine kept busy over one second before the references, the server idle:
    /// other processes competing for the cores.
    pub machine_busy_before_cores: Option<f64>,
    /// Cores busy during the upload charged to neither the server nor this process: other
    /// processes, and kernel softirq work such as loopback networking.
    pub others_upload_cores: Option<f64>,
    /// Why the run stopped early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// Computes the verdict from the figures present.
    pub fn finish(mut self) -> Self {
        self.verdict = self.verdict();
        self
    }

    fn verdict(&self) -> Option<Verdict> {
        let ingest = self.ingest.as_ref()?.mib_per_s;
        let crypto = self.crypto_all_cores?.mib_per_s;
        let disk = self.disk.as_ref()?.pass.mib_per_s;
        let (slower_reference, reference) = if crypto <= disk {
            ("crypto", crypto)
        } else {
            ("disk", disk)
        };
        let ratio = ingest / reference;
        Some(Verdict {
            slower_reference,
            reference_mib_per_s: reference,
            ratio,
            target_ratio: TARGET_RATIO,
            met: ratio >= TARGET_RATIO,
        })
    }

    /// Whether everything ran and what came back is what was sent (a missed target is not a
    /// failure: the report says so).
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.download.as_ref().is_some_and(|d| d.intact)
            && self.manifest.as_ref().is_some_and(|m| m.matches)
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let (m, l) = (&self.machine, &self.load);
        let mut lines = vec![
            "wakili-bench ingest: encrypted recording ingest over HTTP vs this machine's crypto \
             and disk"
                .to_owned(),
            format!(
                "machine   {} · {} cores · Linux {}",
                m.cpu_model, m.cores, m.kernel
            ),
            format!(
                "load      {} in {} chunks of {}, {} PUTs in flight (keep-alive HTTP/1.1, {} \
                 client threads on the same cores)",
                format_bytes(l.size_bytes),
                l.chunks,
                format_bytes(l.chunk_bytes),
                l.parallel,
                l.client_threads
            ),
            format!("server    {}", l.server),
            String::new(),
            format!("{:<28} {:>9} {:>8}  how", "", "MiB/s", "seconds"),
        ];
        let row = |name: &str, pass: Option<&Pass>, how: String| {
            format!(
                "{name:<28} {:>9} {:>8}  {how}",
                pass.map_or("-".into(), |p| format!("{:.1}", p.mib_per_s)),
                pass.map_or("-".into(), |p| format!("{:.2}", p.seconds)),
            )
        };
        let sealing = "seal (AES-256-GCM STREAM, 64 KiB segments) + SHA-256, in process";
        lines.push(row(
            "raw crypto, 1 core",
            self.crypto_one_core.as_ref(),
            sealing.into(),
        ));
        lines.push(row(
            &format!(
                "raw crypto, {} cores",
                self.crypto_all_cores.map_or(m.cores, |p| p.threads)
            ),
            self.crypto_all_cores.as_ref(),
            "the same, one thread per core, each a share of the chunks".into(),
        ));
        lines.push(row(
            "disk write + fsync",
            self.disk.as_ref().map(|d| &d.pass),
            self.disk.as_ref().map_or(String::new(), |d| {
                format!(
                    "1 MiB writes then one fsync ({:.2} s of it), {}",
                    d.fsync_seconds,
                    d.path
                        .parent()
                        .map_or("?".into(), |p| p.display().to_string())
                )
            }),
        ));
        let ingest_pass = self.ingest.as_ref().map(|u| Pass {
            threads: l.parallel,
            seconds: u.seconds,
            mib_per_s: u.mib_per_s,
        });
        lines.push(row(
            "ingest over HTTP",
            ingest_pass.as_ref(),
            self.ingest.as_ref().map_or(String::new(), |u| {
                format!(
                    "first PUT → last 2xx; PUT p50 {:.1} / p99 {:.1} / max {:.1} ms{}",
                    u.put_p50_ms,
                    u.put_p99_ms,
                    u.put_max_ms,
                    if u.already_stored > 0 {
                        format!("; {} already stored (200)", u.already_stored)
                    } else {
                        String::new()
                    }
                )
            }),
        ));
        lines.push(String::new());
        if let Some(id) = &self.recording_id {
            lines.push(format!(
                "recording {id}{}",
                self.signaling_recording_id
                    .as_deref()
                    .map_or(String::new(), |s| format!(
                        " (note: signaling announced {s})"
                    ))
            ));
        }
        if let Some(v) = &self.verdict {
            lines.push(format!(
                "ratio     {:.0} % of the slower reference ({}, {:.1} MiB/s); target ≥ {:.0} %: {}",
                v.ratio * 100.0,
                v.slower_reference,
                v.reference_mib_per_s,
                v.target_ratio * 100.0,
                if v.met { "met" } else { "MISSED" }
            ));
        }
        if let Some(s) = &self.server {
            lines.push(format!(
                "server    {:.2} CPU-s per GiB ingested ({:.2} cores busy during the upload); \
                 RSS peak {:.1} MiB, end {:.1} MiB{}",
                s.cpu_s_per_gib,
                s.upload_cores,
                s.rss_peak_mib,
                s.rss_end_mib,
                self.client_upload_cpu_s
                    .map_or(String::new(), |c| format!("; this client {c:.2} CPU-s"))
            ));
        }
        if let Some(c) = &self.complete {
            lines.push(format!(
                "complete  {:.3} s{}",
                c.seconds,
                c.status
                    .as_deref()
                    .map_or(String::new(), |s| format!(", status {s}"))
            ));
        }
        if let Some(d) = &self.download {
            lines.push(format!(
                "download  {:.1} MiB/s ({} bytes in {:.2} s; URL in {:.3} s); integrity {}",
                d.mib_per_s,
                d.bytes,
                d.seconds,
                d.url_seconds,
                if d.intact {
                    "ok (SHA-256 equals the upload's)".to_owned()
                } else {
                    format!("MISMATCH: SHA-256 {} of {} bytes", d.sha256, d.bytes)
                }
            ));
        }
        if let Some(x) = &self.manifest {
            lines.push(format!(
                "manifest  signature ok (key {}), {}, {} chunks: {}",
                x.key_id,
                x.status,
                x.chunks,
                match &x.mismatch {
                    None => "matches the upload".to_owned(),
                    Some(why) => format!("MISMATCH: {why}"),
                }
            ));
        }
        if let Some(e) = &self.error {
            lines.push(format!("FAILED    {e}"));
        }
        let others = [self.machine_busy_before_cores, self.others_upload_cores];
        if others.iter().flatten().any(|&c| c > SHARED_MACHINE_CORES) {
            lines.push(format!(
                "note      other work kept {} cores busy before the run and {} during the upload \
                 (other processes; during the upload also kernel softirq, e.g. loopback \
                 networking): the figures may be lower than on an idle machine",
                others[0].map_or("?".into(), |c| format!("{c:.2}")),
                others[1].map_or("?".into(), |c| format!("{c:.2}")),
            ));
        }
        lines.push(String::new());
        lines.push(format!(
            "MiB/s = {MIB:.0} bytes per second of media (plaintext); the ratio divides the ingest \
             by the slower of raw crypto on all cores and disk write + fsync"
        ));
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn pass(mib_per_s: f64) -> Pass {
        Pass {
            threads: 2,
            seconds: 1.0,
            mib_per_s,
        }
    }

    fn report() -> Report {
        Report {
            machine: Machine::detect_basic(),
            load: Load {
                size_bytes: 1 << 30,
                chunk_bytes: 1 << 20,
                chunks: 1024,
                parallel: 4,
                server: "wakili serve".into(),
                client_threads: 2,
            },
            crypto_one_core: Some(pass(800.0)),
            crypto_all_cores: Some(pass(1500.0)),
            disk: Some(Disk {
                path: PathBuf::from("/data/x"),
                pass: pass(1000.0),
                fsync_seconds: 0.5,
            }),
            ingest: Some(Upload {
                seconds: 2.0,
                mib_per_s: 650.0,
                stored: 1024,
                already_stored: 0,
                put_p50_ms: 5.0,
                put_p99_ms: 9.0,
                put_max_ms: 12.0,
            }),
            recording_id: Some("r-1".into()),
            signaling_recording_id: None,
            verdict: None,
            server: None,
            complete: None,
            download: Some(Download {
                url_seconds: 0.01,
                seconds: 1.0,
                bytes: 1 << 30,
                mib_per_s: 1024.0,
                sha256: "00".into(),
                intact: true,
            }),
            manifest: Some(ManifestCheck {
                key_id: "k".into(),
                status: "completed".into(),
                chunks: 1024,
                matches: true,
                mismatch: None,
            }),
            client_upload_cpu_s: None,
            machine_busy_before_cores: Some(0.01),
            others_upload_cores: None,
            error: None,
        }
        .finish()
    }

    #[test]
    fn the_slower_reference_sets_the_target() {
        let r = report();
        let v = r.verdict.as_ref().unwrap();
        assert_eq!(v.slower_reference, "disk");
        assert!((v.ratio - 0.65).abs() < 1e-9);
        assert!(v.met);
        assert!(r.ok());
        let text = r.text();
        assert!(
            text.contains("65 % of the slower reference (disk"),
            "{text}"
        );
        assert!(text.contains("met"));
        assert!(text.contains("integrity ok"));
        assert!(!text.contains("other work"));
        let json: serde_json::Value = serde_json::from_str(&r.json().unwrap()).unwrap();
        assert_eq!(json["verdict"]["met"], true);
        assert_eq!(json["disk"]["mib_per_s"], 1000.0);
    }

    #[test]
    fn a_corrupt_download_fails_the_run_and_says_so() {
        let mut r = report();
        r.crypto_all_cores = Some(pass(700.0));
        if let Some(d) = r.download.as_mut() {
            d.intact = false;
        }
        r.others_upload_cores = Some(1.2);
        let r = r.finish();
        assert!(!r.ok());
        assert!(r.text().contains("1.20 during the upload"));
        let v = r.verdict.as_ref().unwrap();
        assert_eq!(v.slower_reference, "crypto");
        assert!(!r.text().contains("MISSED"));
        assert!(r.text().contains("MISMATCH"));
    }
}
