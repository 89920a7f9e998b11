//! `hookd verify`: checks a received webhook's signature locally, for people writing receivers.
//! Prints `ok`, or fails with the precise reason (missing or malformed header, stale timestamp,
//! no matching signature, invalid secret or key). Each scheme of `--scheme` is one call into
//! `hookd_core::signature` over the headers and body.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use hookd_core::signature::{self, HmacEncoding, DEFAULT_HMAC_HEADER};

use crate::cli::{Encoding, Scheme, VerifyArgs};

/// Runs the check against the current time.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let body = read_body(args.body_file.as_deref())?;
    let now = chrono::Utc::now().timestamp();
    verify(args, &body, now)?;
    say!("ok")?;
    Ok(())
}

/// Checks `body` and `args.headers` (names lower-cased) at time `now_secs`.
fn verify(args: &VerifyArgs, body: &[u8], now_secs: i64) -> anyhow::Result<()> {
    check_flags(args)?;
    let headers = &args.headers;
    let result = match args.scheme {
        Scheme::Standard => {
            let secret = secret(args, "the whsec_… secret")?;
            let [id, ts, sig] = standard_headers(headers)?;
            signature::verify_standard(secret, id, ts, sig, body, now_secs)
        }
        Scheme::Ed25519 => {
            let key = match (&args.public_key, &args.secret) {
                (Some(_), Some(_)) => bail!("give --public-key or --secret, not both"),
                (Some(key), None) | (None, Some(key)) => key,
                (None, None) => {
                    bail!("--scheme ed25519 needs --public-key whpk_… (or --secret whsk_…)")
                }
            };
            let [id, ts, sig] = standard_headers(headers)?;
            signature::verify_ed25519(key, id, ts, sig, body, now_secs)
        }
        Scheme::HmacSha256 => {
            let secret = secret(args, "the shared secret")?;
            let name = args
                .signature_header
                .as_deref()
                .unwrap_or(DEFAULT_HMAC_HEADER);
            let value = header(headers, &name.to_ascii_lowercase())?;
            let encoding = match args.encoding {
                None | Some(Encoding::Base64) => HmacEncoding::Base64,
                Some(Encoding::Hex) => HmacEncoding::Hex,
            };
            let prefix = args.prefix.as_deref();
            signature::verify_hmac_sha256(secret, name, value, body, encoding, prefix)
        }
    };
    result.map_err(|e| anyhow!("not verified: {e}"))
}

/// Refuses flags the chosen scheme does not use, rather than silently ignoring them.
fn check_flags(args: &VerifyArgs) -> anyhow::Result<()> {
    let hmac_only = [
        ("--signature-header", args.signature_header.is_some()),
        ("--encoding", args.encoding.is_some()),
        ("--prefix", args.prefix.is_some()),
    ];
    if args.scheme != Scheme::HmacSha256 {
        if let Some((flag, _)) = hmac_only.iter().find(|(_, given)| *given) {
            bail!("{flag} is only used with --scheme hmac-sha256");
        }
    }
    if args.scheme != Scheme::Ed25519 && args.public_key.is_some() {
        bail!("--public-key is only used with --scheme ed25519");
    }
    Ok(())
}

fn secret<'a>(args: &'a VerifyArgs, what: &str) -> anyhow::Result<&'a str> {
    args.secret
        .as_deref()
        .ok_or_else(|| anyhow!("--secret is required: {what}"))
}

/// `webhook-id`, `webhook-timestamp` and `webhook-signature`, each possibly absent.
fn standard_headers(headers: &[(String, String)]) -> anyhow::Result<[Option<&str>; 3]> {
    Ok([
        header(headers, "webhook-id")?,
        header(headers, "webhook-timestamp")?,
        header(headers, "webhook-signature")?,
    ])
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

    fn args(scheme: Scheme, secret: Option<&str>, headers: Vec<(String, String)>) -> VerifyArgs {
        VerifyArgs {
            secret: secret.map(Into::into),
            public_key: None,
            headers,
            body_file: None,
            scheme,
            signature_header: None,
            encoding: None,
            prefix: None,
        }
    }

    fn run_check(args: &VerifyArgs, body: &[u8], now: i64) -> Result<(), String> {
        verify(args, body, now).map_err(|e| e.to_string())
    }

    fn check(headers: &[(String, String)], body: &[u8], now: i64) -> Result<(), String> {
        let args = args(Scheme::Standard, Some(SECRET), headers.to_vec());
        run_check(&args, body, now)
    }

    /// The shared signature vectors, from hookd-core's fixtures.
    fn vectors() -> serde_json::Value {
        let text = include_str!("../../../hookd-core/fixtures/signatures.json");
        serde_json::from_str(text).unwrap()
    }

    fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
        v[key].as_str().unwrap()
    }

    fn v1a_args(v: &serde_json::Value, signature: &str) -> VerifyArgs {
        let headers = vec![
            ("webhook-id".into(), str_of(v, "id").into()),
            ("webhook-timestamp".into(), v["timestamp"].to_string()),
            ("webhook-signature".into(), signature.into()),
        ];
        let mut a = args(Scheme::Ed25519, None, headers);
        a.public_key = Some(str_of(v, "public_key").into());
        a
    }

    #[test]
    fn ed25519_vectors_verify_with_the_public_key_or_the_secret() {
        for v in vectors()["standard_webhooks_v1a"].as_array().unwrap() {
            let (body, ts) = (
                str_of(v, "body").as_bytes(),
                v["timestamp"].as_i64().unwrap(),
            );
            let mut a = v1a_args(v, str_of(v, "signature"));
            assert_eq!(run_check(&a, body, ts), Ok(()));
            assert!(run_check(&a, b"{}", ts)
                .unwrap_err()
                .contains("no signature matches"));
            a.secret = Some(str_of(v, "secret").into());
            assert!(run_check(&a, body, ts).unwrap_err().contains("not both"));
            a.public_key = None;
            assert_eq!(run_check(&a, body, ts), Ok(()));
            a.secret = None;
            assert!(run_check(&a, body, ts)
                .unwrap_err()
                .contains("--public-key"));
            let a = v1a_args(v, SIGNATURE);
            let err = run_check(&a, body, ts).unwrap_err();
            assert!(
                err.contains("malformed header `webhook-signature`"),
                "{err}"
            );
        }
    }

    #[test]
    fn hmac_sha256_vectors_verify_in_their_header() {
        let cases = [
            (
                "github",
                Some("X-Hub-Signature-256"),
                Some(Encoding::Hex),
                Some("sha256="),
            ),
            ("body_hmac_base64", None, None, None),
        ];
        for (group, header, encoding, prefix) in cases {
            for v in vectors()[group].as_array().unwrap() {
                let name = header.unwrap_or("X-Hookd-Signature").to_ascii_lowercase();
                let sent = vec![(name, str_of(v, "signature").to_owned())];
                let mut a = args(Scheme::HmacSha256, Some(str_of(v, "secret")), sent);
                a.signature_header = header.map(Into::into);
                a.encoding = encoding;
                a.prefix = prefix.map(Into::into);
                let body = str_of(v, "body").as_bytes();
                assert_eq!(run_check(&a, body, 0), Ok(()), "{group}");
                let err = run_check(&a, b"tampered", 0).unwrap_err();
                assert!(err.contains("no signature matches"), "{group}: {err}");
                a.headers.clear();
                let err = run_check(&a, body, 0).unwrap_err();
                assert!(err.contains("missing header"), "{group}: {err}");
            }
        }
        let github = &vectors()["github"][0];
        let sent = vec![(
            "x-hookd-signature".into(),
            str_of(github, "signature").into(),
        )];
        let mut a = args(Scheme::HmacSha256, Some(str_of(github, "secret")), sent);
        a.encoding = Some(Encoding::Hex);
        let err = run_check(&a, str_of(github, "body").as_bytes(), 0).unwrap_err();
        assert!(
            err.contains("malformed header `X-Hookd-Signature`"),
            "{err}"
        );
    }

    #[test]
    fn flags_of_another_scheme_are_refused() {
        let mut a = args(Scheme::Standard, Some(SECRET), headers(SIGNATURE));
        a.prefix = Some("sha256=".into());
        assert!(run_check(&a, BODY, TIMESTAMP)
            .unwrap_err()
            .contains("--prefix"));
        let mut a = args(Scheme::Standard, Some(SECRET), headers(SIGNATURE));
        a.public_key = Some("whpk_x".into());
        assert!(run_check(&a, BODY, TIMESTAMP)
            .unwrap_err()
            .contains("--public-key"));
        let a = args(Scheme::Standard, None, headers(SIGNATURE));
        assert!(run_check(&a, BODY, TIMESTAMP)
            .unwrap_err()
            .contains("--secret"));
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
