//! `hookd`: parses the command line, runs the command, and on failure prints the error with its
//! causes and exits with status 1.

use std::process::ExitCode;

use clap::Parser as _;
use hookd::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match hookd::commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", labelled("error: ", &error.to_string()));
            for cause in error.chain().skip(1) {
                eprintln!("{}", labelled("  caused by: ", &cause.to_string()));
            }
            ExitCode::FAILURE
        }
    }
}

/// `label` then `text`, whose further lines are aligned under its first.
fn labelled(label: &str, text: &str) -> String {
    let indent = format!("\n{:width$}", "", width = label.len());
    format!("{label}{}", text.replace('\n', &indent))
}
