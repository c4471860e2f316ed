//! `wakili`: the server binary. It parses flags, sets up logging and wires the library crates.

mod cli;
mod commands;
mod loadtest;
mod logging;
mod verify;

use clap::Parser;

/// mimalloc instead of glibc's malloc: a join storm spent an eighth of the server's time in
/// malloc, mostly growing the heap for each new connection's state.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set (then
/// mimalloc's option decides). mimalloc asks for them (`MADV_HUGEPAGE`) on its arenas, and each
/// page it touches for the first time then costs the kernel zeroing 2 MiB instead of 4 KiB: a
/// join storm spent 38 % of the server's time in `clear_page_erms` (355 µs of CPU per join with
/// huge pages, 275 without, and 54 against 44 KiB per idle participant; keeping freed memory
/// instead, `MIMALLOC_PURGE_DELAY=-1`, did not help). The server never needs them: its memory
/// is many small per-connection states, not a few large tables.
fn no_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // A kernel without the flag keeps its default; nothing breaks either way.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    let prepared = match commands::prepare(cli::Cli::parse()) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = prepared.worker_threads() {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(prepared)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
