//! `hookd`: parses the command line, runs the command, and on failure prints the error with its
//! causes and exits with status 1. Output cut off by its reader (`hookd … | head`) ends the
//! command quietly.

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser as _;
use hookd::cli::Cli;

/// Allocation is on every request's path; mimalloc costs a third of glibc's (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match hookd::commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if closed_output(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let mut shown = error.to_string();
            eprintln!("{}", labelled("error: ", &shown));
            for cause in error.chain().skip(1) {
                // An error that quotes its cause already showed it.
                let text = cause.to_string();
                if !shown.contains(&text) {
                    eprintln!("{}", labelled("  caused by: ", &text));
                }
                shown = text;
            }
            ExitCode::FAILURE
        }
    }
}

/// Whether `error` is standard output closed by its reader.
fn closed_output(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
    })
}

/// `label` then `text`, whose further lines are aligned under its first.
fn labelled(label: &str, text: &str) -> String {
    let indent = format!("\n{:width$}", "", width = label.len());
    format!("{label}{}", text.replace('\n', &indent))
}
