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

fn main() -> std::process::ExitCode {
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
