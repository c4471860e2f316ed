//! Merges one-track WebM files (as `TrackMuxer` writes them) into one multi-track WebM:
//! `cargo run --release -p wakili-mux --example merge -- out.webm cam.webm@0 mic.webm@700`
//! (`FILE@OFFSET_MS`, offset 0 when left out; the track's name is the file's stem).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use wakili_mux::{MergeInput, merge};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, specs)) = args.split_first().filter(|(_, s)| !s.is_empty()) else {
        eprintln!("usage: merge OUT.webm IN.webm[@OFFSET_MS]...");
        return ExitCode::from(2);
    };
    let mut inputs = Vec::new();
    for spec in specs {
        let (path, offset) = match spec.rsplit_once('@') {
            Some((path, offset)) => match offset.parse::<u64>() {
                Ok(offset) => (path, offset),
                Err(_) => {
                    eprintln!("{spec}: the offset must be whole milliseconds");
                    return ExitCode::from(2);
                }
            },
            None => (spec.as_str(), 0),
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let name = Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        inputs.push(MergeInput {
            offset_ms: offset,
            name,
            reader: BufReader::with_capacity(1 << 16, file),
        });
    }
    let out_file = match File::create(out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{out}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match merge(inputs, BufWriter::with_capacity(1 << 16, out_file)) {
        Ok(stats) => {
            for t in &stats.tracks {
                println!(
                    "track {} {:?} {}: {} blocks ({} keyframes), {:?}..{:?} ms{}{}",
                    t.track_number,
                    t.name,
                    t.codec_id,
                    t.blocks,
                    t.keyframes,
                    t.start_ms,
                    t.end_ms,
                    if t.truncated { ", truncated" } else { "" },
                    if t.segments > 1 {
                        format!(", {} segments", t.segments)
                    } else {
                        String::new()
                    },
                );
            }
            println!(
                "{out}: {} bytes, {} ms, {} clusters, {} cue points, in {:?}",
                stats.bytes,
                stats.duration_ms,
                stats.clusters,
                stats.cue_points,
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("merge refused: {e}");
            ExitCode::FAILURE
        }
    }
}
