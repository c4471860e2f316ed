//! `wakili-bench`: benchmark commands, each measuring Wakili beside a reference on one machine.

mod cli;
mod ingest;
mod process;
mod push;
mod record;
mod report;
mod servers;
mod sfu;
mod signal;
mod turn;
mod uclient;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match &cli.command {
        cli::Command::Turn(args) => turn::run(args),
        cli::Command::Signal(args) => signal::run(args),
        cli::Command::Ingest(args) => ingest::run(args),
        cli::Command::Record(args) => record::run(args),
        cli::Command::SignalReferenceServer(args) => signal::reference::serve(args),
        cli::Command::Push(args) => push::run(args),
        cli::Command::PushFakeFcm(args) => push::serve_fake(args),
        cli::Command::Sfu(args) => sfu::run(args),
        cli::Command::SfuServer(args) => sfu::serve(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        // The report names the failed runs.
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
