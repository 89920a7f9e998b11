//! The OpenAPI document against the running server: schemathesis (a property-based client)
//! generates requests from the document, valid and invalid, and checks each answer against it.
//!
//! It runs when `HOOKD_TEST_SCHEMATHESIS` names the `st` program (`.ci/run` installs it in a
//! virtualenv); without it the test says it was skipped, and `HOOKD_TEST_SCHEMATHESIS=required`
//! with no `st` on `PATH` fails.

use std::process::Stdio;

use crate::backend_test;
use crate::support::{spawn_app, Backend, TOKEN};

/// What a response may not do: be a 5xx, carry a status, content type, header or body the
/// document does not give it, or accept a request the document says is invalid.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,negative_data_rejection";
/// Examples per operation and phase: enough to walk every schema's constraints, small enough
/// for CI (under a minute per backend).
const EXAMPLES: &str = "25";
/// A fixed seed, so CI runs the same cases every time; run `st` without it to explore.
const SEED: &str = "20261202";

/// The `st` program to run, or `None` (the test is skipped).
fn schemathesis() -> Option<String> {
    match std::env::var("HOOKD_TEST_SCHEMATHESIS").ok().as_deref() {
        Some("required") => Some("st".into()),
        Some(path) if !path.is_empty() => Some(path.into()),
        _ => {
            eprintln!("skipped: set HOOKD_TEST_SCHEMATHESIS to schemathesis' `st` program");
            None
        }
    }
}

backend_test!(schemathesis_finds_no_server_error_and_no_answer_off_the_document);
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document(b: Backend) {
    let Some(st) = schemathesis() else {
        return;
    };
    // One run at a time, with one worker: schemathesis' threads once crashed inside CPython's
    // compiler (a `SystemError` and a `KeyError` from its line cache) while two runs shared the
    // machine with the rest of the suite.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = spawn_app(&b).await;
    let run = tokio::process::Command::new(&st)
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", app.base),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            CHECKS,
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            "--no-color",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {st} (schemathesis): {e}"));
    let out = String::from_utf8_lossy(&run.stdout);
    let summary: String = out.lines().rev().take(25).collect::<Vec<_>>().join("\n");
    assert!(
        run.status.success(),
        "schemathesis found answers off the document:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // It did test the operations: a run that tested nothing also exits 0.
    assert!(out.contains("passed"), "{summary}");
    let tested = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(tested >= 40, "only {tested} operations tested:\n{summary}");
}
