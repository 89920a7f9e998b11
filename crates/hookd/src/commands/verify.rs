//! `hookd verify`: checks a received webhook's signature locally, for people writing receivers.
//! Prints `ok`, or fails with the precise reason (missing or malformed header, stale timestamp,
//! no matching signature). Each scheme of `--scheme` is one function over headers and body.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use hookd_core::signature;

use crate::cli::{Scheme, VerifyArgs};

/// Runs the check against the current time.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let body = read_body(args.body_file.as_deref())?;
    let now = chrono::Utc::now().timestamp();
    verify(args.scheme, &args.secret, &args.headers, &body, now)?;
    println!("ok");
    Ok(())
}

/// Checks `body` and `headers` (names lower-cased) against `secret` at time `now_secs`.
fn verify(
    scheme: Scheme,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
) -> anyhow::Result<()> {
    match scheme {
        Scheme::Standard => {
            let id = header(headers, "webhook-id")?;
            let timestamp = header(headers, "webhook-timestamp")?;
            let sig = header(headers, "webhook-signature")?;
            signature::verify_standard(secret, id, timestamp, sig, body, now_secs)
                .map_err(|e| anyhow!("not verified: {e}"))
        }
    }
}

/// The value of header `name`, which may be given once at most.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> anyhow::Result<Option<&'a str>> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        bail!("header `{name}` is given more than once");
    }
    Ok(first)
}

/// The exact body bytes from `path`, or from standard input when it is not a terminal.
fn read_body(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = path {
        return std::fs::read(path)
            .with_context(|| format!("--body-file: reading {}", path.display()));
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no body: pass --body-file FILE or pipe the exact body on standard input");
    }
    let mut body = Vec::new();
    stdin
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published Standard Webhooks vector (also in the project's signature fixtures).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(signature: &str) -> Vec<(String, String)> {
        vec![
            ("webhook-id".into(), ID.into()),
            ("webhook-timestamp".into(), TIMESTAMP.to_string()),
            ("webhook-signature".into(), signature.into()),
        ]
    }

    fn check(headers: &[(String, String)], body: &[u8], now: i64) -> Result<(), String> {
        verify(Scheme::Standard, SECRET, headers, body, now).map_err(|e| e.to_string())
    }

    #[test]
    fn a_valid_signature_is_ok() {
        assert_eq!(check(&headers(SIGNATURE), BODY, TIMESTAMP + 10), Ok(()));
    }

    #[test]
    fn each_failure_says_why() {
        let tampered = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        let mut missing = headers(SIGNATURE);
        missing.remove(0);
        let mut twice = headers(SIGNATURE);
        twice.push(("webhook-id".into(), "other".into()));
        let mut malformed = headers(SIGNATURE);
        malformed[1].1 = "soon".into();
        let cases = [
            (
                check(&headers(tampered), BODY, TIMESTAMP),
                "no signature matches",
            ),
            (
                check(&headers(SIGNATURE), b"{}", TIMESTAMP),
                "no signature matches",
            ),
            (
                check(&headers(SIGNATURE), BODY, TIMESTAMP + 3600),
                "timestamp",
            ),
            (
                check(&missing, BODY, TIMESTAMP),
                "missing header `webhook-id`",
            ),
            (check(&twice, BODY, TIMESTAMP), "given more than once"),
            (
                check(&malformed, BODY, TIMESTAMP),
                "malformed header `webhook-timestamp`",
            ),
        ];
        for (result, want) in cases {
            let message = result.expect_err(want);
            assert!(message.contains(want), "{message} lacks {want}");
        }
    }
}
