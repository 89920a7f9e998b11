//! Whether an inbound request may run: basic auth, or a signature over the raw body bytes.
//!
//! | preset | header | signed content | encoding | clock |
//! |---|---|---|---|---|
//! | `github` | `X-Hub-Signature-256: sha256=<hex>` | body | hex | none |
//! | `stripe` | `Stripe-Signature: t=…,v1=…[,v1=…]` | `{t}.{body}` | hex, any `v1` | ±300 s |
//! | `slack` | `X-Slack-Signature: v0=<hex>` | `v0:{X-Slack-Request-Timestamp}:{body}` | hex | ±300 s |
//! | `shopify` | `X-Shopify-Hmac-Sha256` | body | base64 | none |
//! | `standard` | `webhook-id`, `webhook-timestamp`, `webhook-signature` | `{id}.{ts}.{body}` | `v1` HMAC or `v1a` Ed25519 | ±300 s |
//! | `hmac` | configured | body | hex or base64, optional prefix, SHA-256 or SHA-512 | none |
//!
//! HMAC keys are the secret's UTF-8 bytes, except `standard`'s `whsec_` secrets, whose key is the
//! base64 after the prefix. Every comparison is constant-time: HMACs through
//! `Mac::verify_slice`, basic credentials through `subtle` over SHA-256 digests (so that not
//! even the length of the expected value leaks).
//!
//! Headers come as `(name, value)` pairs and are looked up case-insensitively; the server fills
//! them from its request (values that are not UTF-8 can be passed lossily: they never verify).

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::spec::{HmacAlgorithm, InboundAuth, SignaturePreset};
use crate::signature::{
    verify_ed25519, verify_standard, HmacEncoding, VerifyError, TIMESTAMP_TOLERANCE_SECS,
};

/// The `WWW-Authenticate` value that goes with a basic-auth rejection.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"hookd\"";

/// Why a request was refused (401). `code` is for machines (metrics, execution records),
/// `reason` for the person reading the log; neither holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub reason: String,
    /// Set for basic auth: the answer carries `WWW-Authenticate: <challenge>`.
    pub challenge: Option<&'static str>,
}

/// The kinds of [`Rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionCode {
    MissingHeader,
    MalformedHeader,
    BadSignature,
    StaleTimestamp,
    BadCredentials,
}

impl RejectionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::MalformedHeader => "malformed_header",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::BadCredentials => "bad_credentials",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.reason)
    }
}

impl Rejection {
    fn new(code: RejectionCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            challenge: None,
        }
    }

    fn missing(header: &str) -> Self {
        Self::new(
            RejectionCode::MissingHeader,
            format!("missing header `{header}`"),
        )
    }

    fn malformed(header: &str, why: &str) -> Self {
        let reason = format!("malformed header `{header}`: {why}");
        Self::new(RejectionCode::MalformedHeader, reason)
    }

    fn bad_signature() -> Self {
        Self::new(RejectionCode::BadSignature, "no signature matches")
    }
}

impl From<VerifyError> for Rejection {
    fn from(e: VerifyError) -> Self {
        let code = match &e {
            VerifyError::MissingHeader(_) => RejectionCode::MissingHeader,
            VerifyError::MalformedHeader { .. } => RejectionCode::MalformedHeader,
            VerifyError::StaleTimestamp(_) => RejectionCode::StaleTimestamp,
            // A stored secret that does not decode verifies nothing (it is checked at save).
            VerifyError::BadSignature | VerifyError::InvalidSecret(_) => {
                RejectionCode::BadSignature
            }
        };
        Self::new(code, e.to_string())
    }
}

/// The first value of header `name` (case-insensitive).
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Checks a request against its hook's `auth` at time `now_secs` (Unix seconds).
pub fn verify(
    auth: &InboundAuth,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejection> {
    match auth {
        InboundAuth::None {} => Ok(()),
        InboundAuth::Basic { username, password } => basic(
            username,
            password.expose(),
            header(headers, "authorization"),
        )
        .map_err(|mut r| {
            r.challenge = Some(BASIC_CHALLENGE);
            r
        }),
        InboundAuth::Signature(preset) => signature(preset, headers, body, now_secs),
    }
}

fn signature(
    preset: &SignaturePreset,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejection> {
    let sha256 = HmacAlgorithm::Sha256;
    match preset {
        SignaturePreset::Github { secret } => {
            let h = BodyHmac::new("X-Hub-Signature-256", HmacEncoding::Hex, Some("sha256="));
            h.verify(secret.expose(), sha256, headers, body)
        }
        SignaturePreset::Shopify { secret } => {
            let h = BodyHmac::new("X-Shopify-Hmac-Sha256", HmacEncoding::Base64, None);
            h.verify(secret.expose(), sha256, headers, body)
        }
        SignaturePreset::Hmac {
            secret,
            header,
            encoding,
            prefix,
            algorithm,
        } => BodyHmac::new(header, *encoding, prefix.as_deref()).verify(
            secret.expose(),
            *algorithm,
            headers,
            body,
        ),
        SignaturePreset::Stripe { secret } => stripe(secret.expose(), headers, body, now_secs),
        SignaturePreset::Slack { secret } => slack(secret.expose(), headers, body, now_secs),
        SignaturePreset::Standard { secret, public_key } => {
            let id = header(headers, "webhook-id");
            let ts = header(headers, "webhook-timestamp");
            let sig = header(headers, "webhook-signature");
            let r = match (secret, public_key) {
                (Some(s), _) => verify_standard(s.expose(), id, ts, sig, body, now_secs),
                (None, Some(k)) => verify_ed25519(k, id, ts, sig, body, now_secs),
                (None, None) => Err(VerifyError::InvalidSecret("none configured".into())),
            };
            r.map_err(Rejection::from)
        }
    }
}

/// Whether `given` is the HMAC of `parts` (concatenated) under `key`, in constant time.
fn hmac_matches(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]], given: &[u8]) -> bool {
    match algorithm {
        HmacAlgorithm::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            parts.iter().for_each(|p| mac.update(p));
            mac.verify_slice(given).is_ok()
        }
        HmacAlgorithm::Sha512 => {
            let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key length");
            parts.iter().for_each(|p| mac.update(p));
            mac.verify_slice(given).is_ok()
        }
    }
}

/// An HMAC of the body alone in one header (GitHub, Shopify, the generic preset).
struct BodyHmac<'a> {
    header: &'a str,
    encoding: HmacEncoding,
    prefix: Option<&'a str>,
}

impl<'a> BodyHmac<'a> {
    fn new(header: &'a str, encoding: HmacEncoding, prefix: Option<&'a str>) -> Self {
        Self {
            header,
            encoding,
            prefix,
        }
    }

    fn verify(
        &self,
        secret: &str,
        algorithm: HmacAlgorithm,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), Rejection> {
        let value = header(headers, self.header).ok_or_else(|| Rejection::missing(self.header))?;
        let prefix = self.prefix.unwrap_or("");
        let encoded = value.trim().strip_prefix(prefix).ok_or_else(|| {
            Rejection::malformed(self.header, &format!("must start with `{prefix}`"))
        })?;
        let given = self.encoding.decode(encoded).ok_or_else(|| {
            let why = format!("is not {} after the prefix", self.encoding.name());
            Rejection::malformed(self.header, &why)
        })?;
        if hmac_matches(algorithm, secret.as_bytes(), &[body], &given) {
            Ok(())
        } else {
            Err(Rejection::bad_signature())
        }
    }
}

/// A Unix timestamp in seconds, within the tolerance of `now_secs`.
fn fresh_timestamp(header: &str, raw: &str, now_secs: i64) -> Result<(), Rejection> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::malformed(
            header,
            "must be a plain integer of seconds",
        ));
    }
    let ts: i64 = raw
        .parse()
        .map_err(|_| Rejection::malformed(header, "out of range"))?;
    let skew = now_secs - ts;
    if skew.abs() > TIMESTAMP_TOLERANCE_SECS {
        let reason =
            format!("timestamp is {skew} s away from now (more than {TIMESTAMP_TOLERANCE_SECS} s)");
        return Err(Rejection::new(RejectionCode::StaleTimestamp, reason));
    }
    Ok(())
}

/// Stripe: `t=<ts>,v1=<hex>[,v1=<hex>…]` over `{t}.{body}`; any `v1` may match, other schemes
/// (`v0`) are ignored.
fn stripe(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejection> {
    const NAME: &str = "Stripe-Signature";
    let value = header(headers, NAME).ok_or_else(|| Rejection::missing(NAME))?;
    let mut t = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", ts)) => t = Some(ts),
            Some(("v1", sig)) => v1.push(sig),
            Some(_) => {}
            None => return Err(Rejection::malformed(NAME, "items must be `key=value`")),
        }
    }
    let t = t.ok_or_else(|| Rejection::malformed(NAME, "has no `t=` timestamp"))?;
    if v1.is_empty() {
        return Err(Rejection::malformed(NAME, "has no `v1=` signature"));
    }
    fresh_timestamp(NAME, t, now_secs)?;
    let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
    let matched = v1.iter().any(|sig| {
        HmacEncoding::Hex.decode(sig).is_some_and(|given| {
            hmac_matches(HmacAlgorithm::Sha256, secret.as_bytes(), &parts, &given)
        })
    });
    if matched {
        Ok(())
    } else {
        Err(Rejection::bad_signature())
    }
}

/// Slack: `v0=<hex>` of `v0:{X-Slack-Request-Timestamp}:{body}`.
fn slack(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejection> {
    const SIG: &str = "X-Slack-Signature";
    const TS: &str = "X-Slack-Request-Timestamp";
    let ts = header(headers, TS).ok_or_else(|| Rejection::missing(TS))?;
    let sig = header(headers, SIG).ok_or_else(|| Rejection::missing(SIG))?;
    fresh_timestamp(TS, ts, now_secs)?;
    let hex = sig
        .strip_prefix("v0=")
        .ok_or_else(|| Rejection::malformed(SIG, "must start with `v0=`"))?;
    let given = HmacEncoding::Hex
        .decode(hex)
        .ok_or_else(|| Rejection::malformed(SIG, "is not hex after `v0=`"))?;
    let parts: [&[u8]; 4] = [b"v0:", ts.as_bytes(), b":", body];
    if hmac_matches(HmacAlgorithm::Sha256, secret.as_bytes(), &parts, &given) {
        Ok(())
    } else {
        Err(Rejection::bad_signature())
    }
}

/// HTTP Basic: `Authorization: Basic base64(user:password)`, both compared in constant time.
fn basic(username: &str, password: &str, authorization: Option<&str>) -> Result<(), Rejection> {
    const NAME: &str = "Authorization";
    let value = authorization.ok_or_else(|| Rejection::missing(NAME))?;
    let (scheme, encoded) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| Rejection::malformed(NAME, "must be `Basic <credentials>`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Rejection::malformed(NAME, "must use the Basic scheme"));
    }
    let decoded = B64
        .decode(encoded.trim())
        .map_err(|_| Rejection::malformed(NAME, "credentials are not base64"))?;
    let (user, pass) = match decoded.iter().position(|&b| b == b':') {
        Some(i) => (&decoded[..i], &decoded[i + 1..]),
        None => {
            return Err(Rejection::malformed(
                NAME,
                "credentials must be `user:password`",
            ))
        }
    };
    let same = |a: &[u8], b: &[u8]| {
        Sha256::digest(a)
            .as_slice()
            .ct_eq(Sha256::digest(b).as_slice())
    };
    let user_ok = same(user, username.as_bytes());
    let pass_ok = same(pass, password.as_bytes());
    if bool::from(user_ok & pass_ok) {
        Ok(())
    } else {
        let reason = "username or password does not match";
        Err(Rejection::new(RejectionCode::BadCredentials, reason))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::signature::SigningSecret;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../fixtures/signatures.json")).unwrap()
    }

    fn s(v: &Value, key: &str) -> String {
        v[key].as_str().unwrap().to_owned()
    }

    fn secret(raw: &str) -> SigningSecret {
        SigningSecret::parse_plain(raw).unwrap()
    }

    fn preset(p: SignaturePreset) -> InboundAuth {
        InboundAuth::Signature(p)
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn code(r: Result<(), Rejection>) -> Option<&'static str> {
        r.err().map(|r| r.code.as_str())
    }

    #[test]
    fn github_vectors_verify_and_fail_cleanly() {
        for v in vectors()["github"].as_array().unwrap() {
            let auth = preset(SignaturePreset::Github {
                secret: secret(&s(v, "secret")),
            });
            let body = s(v, "body");
            let sig = s(v, "signature");
            // Header names are case-insensitive; GitHub has no timestamp, so any clock passes.
            let headers = h(&[("x-hub-signature-256", &sig)]);
            assert_eq!(verify(&auth, &headers, body.as_bytes(), 0), Ok(()));
            let r = verify(&auth, &headers, b"Hello, World?", 0);
            assert_eq!(code(r), Some("bad_signature"));
            assert_eq!(
                code(verify(&auth, &[], body.as_bytes(), 0)),
                Some("missing_header")
            );
            for bad in [&sig["sha256=".len()..], "sha256=zz", "sha256=abc"] {
                let r = verify(
                    &auth,
                    &h(&[("X-Hub-Signature-256", bad)]),
                    body.as_bytes(),
                    0,
                );
                assert_eq!(code(r), Some("malformed_header"), "{bad}");
            }
        }
    }

    #[test]
    fn slack_vectors_verify_with_the_clock_pinned() {
        for v in vectors()["slack"].as_array().unwrap() {
            let auth = preset(SignaturePreset::Slack {
                secret: secret(&s(v, "secret")),
            });
            let body = s(v, "body");
            let ts = v["timestamp"].as_i64().unwrap();
            let sig = s(v, "signature");
            let tss = ts.to_string();
            let headers = h(&[
                ("X-Slack-Request-Timestamp", &tss),
                ("X-Slack-Signature", &sig),
            ]);
            assert_eq!(verify(&auth, &headers, body.as_bytes(), ts), Ok(()));
            assert_eq!(verify(&auth, &headers, body.as_bytes(), ts + 300), Ok(()));
            let stale = verify(&auth, &headers, body.as_bytes(), ts + 301);
            assert_eq!(code(stale), Some("stale_timestamp"));
            let r = verify(&auth, &headers, b"token=other", ts);
            assert_eq!(code(r), Some("bad_signature"));
            for missing in [&headers[..1], &headers[1..]] {
                assert_eq!(
                    code(verify(&auth, missing, body.as_bytes(), ts)),
                    Some("missing_header")
                );
            }
            for (name, bad) in [
                ("X-Slack-Signature", &sig[3..]),
                ("X-Slack-Signature", "v0=xyz"),
                ("X-Slack-Request-Timestamp", "1531420618.5"),
            ] {
                let mut headers = headers.clone();
                headers.iter_mut().find(|(n, _)| n == name).unwrap().1 = bad.into();
                let r = verify(&auth, &headers, body.as_bytes(), ts);
                assert_eq!(code(r), Some("malformed_header"), "{name}: {bad}");
            }
        }
    }

    #[test]
    fn stripe_vectors_verify_with_any_v1() {
        for v in vectors()["stripe"].as_array().unwrap() {
            let auth = preset(SignaturePreset::Stripe {
                secret: secret(&s(v, "secret")),
            });
            let body = s(v, "body");
            let ts = v["timestamp"].as_i64().unwrap();
            let value = s(v, "header_value");
            let check = |value: &str, body: &[u8], now: i64| {
                code(verify(&auth, &h(&[("Stripe-Signature", value)]), body, now))
            };
            assert_eq!(check(&value, body.as_bytes(), ts), None);
            let good = value.split_once(",v1=").unwrap().1;
            let wrong = "0".repeat(64);
            let several = format!("t={ts},v1={wrong},v0={good},v1={good}");
            assert_eq!(check(&several, body.as_bytes(), ts), None);
            let only_wrong = format!("t={ts},v1={wrong},v0={good}");
            assert_eq!(
                check(&only_wrong, body.as_bytes(), ts),
                Some("bad_signature")
            );
            assert_eq!(check(&value, b"{}", ts), Some("bad_signature"));
            assert_eq!(
                check(&value, body.as_bytes(), ts + 301),
                Some("stale_timestamp")
            );
            assert_eq!(
                code(verify(&auth, &[], body.as_bytes(), ts)),
                Some("missing_header")
            );
            for bad in [
                format!("v1={good}"),
                format!("t={ts}"),
                format!("t=1e9,v1={good}"),
                "garbage".into(),
            ] {
                assert_eq!(
                    check(&bad, body.as_bytes(), ts),
                    Some("malformed_header"),
                    "{bad}"
                );
            }
        }
    }

    fn standard_headers(v: &Value, signature: &str) -> Vec<(String, String)> {
        let ts = v["timestamp"].as_i64().unwrap().to_string();
        h(&[
            ("webhook-id", &s(v, "id")),
            ("webhook-timestamp", &ts),
            ("webhook-signature", signature),
        ])
    }

    #[test]
    fn standard_v1_and_v1a_vectors_verify() {
        let all = vectors();
        for v in all["standard_webhooks_v1"].as_array().unwrap() {
            let auth = preset(SignaturePreset::Standard {
                secret: Some(secret(&s(v, "secret"))),
                public_key: None,
            });
            let ts = v["timestamp"].as_i64().unwrap();
            let headers = standard_headers(v, &s(v, "signature"));
            assert_eq!(verify(&auth, &headers, s(v, "body").as_bytes(), ts), Ok(()));
        }
        for v in all["standard_webhooks_v1_must_fail"].as_array().unwrap() {
            let auth = preset(SignaturePreset::Standard {
                secret: Some(secret(&s(v, "secret"))),
                public_key: None,
            });
            let ts = v["timestamp"].as_i64().unwrap();
            let headers = standard_headers(v, &s(v, "signature"));
            let r = verify(&auth, &headers, s(v, "body").as_bytes(), ts);
            assert_eq!(code(r), Some("bad_signature"), "{}", v["why"]);
        }
        for v in all["standard_webhooks_v1a"].as_array().unwrap() {
            let auth = preset(SignaturePreset::Standard {
                secret: None,
                public_key: Some(s(v, "public_key")),
            });
            let ts = v["timestamp"].as_i64().unwrap();
            let body = s(v, "body");
            let headers = standard_headers(v, &s(v, "signature"));
            assert_eq!(verify(&auth, &headers, body.as_bytes(), ts), Ok(()));
            assert_eq!(
                code(verify(&auth, &headers, b"{}", ts)),
                Some("bad_signature")
            );
        }
    }

    #[test]
    fn standard_rejects_stale_missing_and_malformed() {
        let all = vectors();
        let v = &all["standard_webhooks_v1"][0];
        let auth = preset(SignaturePreset::Standard {
            secret: Some(secret(&s(v, "secret"))),
            public_key: None,
        });
        let ts = v["timestamp"].as_i64().unwrap();
        let body = s(v, "body");
        let headers = standard_headers(v, &s(v, "signature"));
        let check =
            |headers: &[(String, String)], now| code(verify(&auth, headers, body.as_bytes(), now));
        assert_eq!(check(&headers, ts - 301), Some("stale_timestamp"));
        assert_eq!(check(&headers, ts + 301), Some("stale_timestamp"));
        for i in 0..3 {
            let mut fewer = headers.clone();
            fewer.remove(i);
            assert_eq!(check(&fewer, ts), Some("missing_header"));
        }
        let mut bad_ts = headers.clone();
        bad_ts[1].1 = "12abc".into();
        assert_eq!(check(&bad_ts, ts), Some("malformed_header"));
        let only_v2 = standard_headers(v, "v2,abc");
        assert_eq!(check(&only_v2, ts), Some("malformed_header"));
    }

    #[test]
    fn body_hmac_base64_verifies_as_shopify_and_as_generic_hmac() {
        for v in vectors()["body_hmac_base64"].as_array().unwrap() {
            let body = s(v, "body");
            let sig = s(v, "signature");
            let shopify = preset(SignaturePreset::Shopify {
                secret: secret(&s(v, "secret")),
            });
            let headers = h(&[("X-Shopify-Hmac-Sha256", &sig)]);
            assert_eq!(verify(&shopify, &headers, body.as_bytes(), 0), Ok(()));
            assert_eq!(
                code(verify(&shopify, &headers, b"x", 0)),
                Some("bad_signature")
            );
            assert_eq!(
                code(verify(&shopify, &[], body.as_bytes(), 0)),
                Some("missing_header")
            );
            let bad = h(&[("X-Shopify-Hmac-Sha256", "%%%")]);
            assert_eq!(
                code(verify(&shopify, &bad, body.as_bytes(), 0)),
                Some("malformed_header")
            );

            let frappe = preset(SignaturePreset::Hmac {
                secret: secret(&s(v, "secret")),
                header: "X-Frappe-Webhook-Signature".into(),
                encoding: HmacEncoding::Base64,
                prefix: None,
                algorithm: HmacAlgorithm::Sha256,
            });
            let headers = h(&[("x-frappe-webhook-signature", &sig)]);
            assert_eq!(verify(&frappe, &headers, body.as_bytes(), 0), Ok(()));
        }
    }

    #[test]
    fn generic_hmac_takes_prefix_hex_and_sha512() {
        let all = vectors();
        let gh = &all["github"][0];
        let as_github = preset(SignaturePreset::Hmac {
            secret: secret(&s(gh, "secret")),
            header: "X-Sig".into(),
            encoding: HmacEncoding::Hex,
            prefix: Some("sha256=".into()),
            algorithm: HmacAlgorithm::Sha256,
        });
        let headers = h(&[("X-Sig", &s(gh, "signature"))]);
        assert_eq!(
            verify(&as_github, &headers, s(gh, "body").as_bytes(), 0),
            Ok(())
        );
        let missing_prefix = h(&[("X-Sig", &s(gh, "signature")["sha256=".len()..])]);
        let r = verify(&as_github, &missing_prefix, s(gh, "body").as_bytes(), 0);
        assert_eq!(code(r), Some("malformed_header"));

        // Python: hmac.new(b"hush", body, hashlib.sha512).hexdigest()
        let sha512 = "7c464247dc5399762f8c3229380a4a2213cd5c36f1ef8b13121c8e669d51cc39\
                      ea50f97e70ee866d0de9e93976332d03e5642c21dc514e297ae54d99a9997c34";
        let auth = preset(SignaturePreset::Hmac {
            secret: secret("hush"),
            header: "X-Sig".into(),
            encoding: HmacEncoding::Hex,
            prefix: None,
            algorithm: HmacAlgorithm::Sha512,
        });
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(verify(&auth, &h(&[("X-Sig", sha512)]), body, 0), Ok(()));
        let r = verify(&auth, &h(&[("X-Sig", &sha512[..64])]), body, 0);
        assert_eq!(
            code(r),
            Some("bad_signature"),
            "a SHA-256-sized value does not pass"
        );
    }

    #[test]
    fn basic_auth_compares_both_and_asks_for_credentials() {
        let auth = InboundAuth::Basic {
            username: "alice".into(),
            password: secret("s3cret:x"),
        };
        // base64("alice:s3cret:x"): the password may hold a colon.
        let good = h(&[("Authorization", "Basic YWxpY2U6czNjcmV0Ong=")]);
        assert_eq!(verify(&auth, &good, b"", 0), Ok(()));
        let basic = |user: &str, pass: &str| {
            let v = format!("basic {}", B64.encode(format!("{user}:{pass}")));
            verify(&auth, &h(&[("authorization", &v)]), b"", 0)
        };
        assert_eq!(basic("alice", "s3cret:x"), Ok(()));
        for (user, pass) in [
            ("alice", "s3cret"),
            ("bob", "s3cret:x"),
            ("", ""),
            ("alice", "s3cret:xx"),
        ] {
            let r = basic(user, pass).unwrap_err();
            assert_eq!(
                (r.code, r.challenge),
                (RejectionCode::BadCredentials, Some(BASIC_CHALLENGE))
            );
        }
        let r = verify(&auth, &[], b"", 0).unwrap_err();
        assert_eq!(
            (r.code, r.challenge),
            (RejectionCode::MissingHeader, Some(BASIC_CHALLENGE))
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic YWxpY2U=", "Basic"] {
            let r = verify(&auth, &h(&[("Authorization", bad)]), b"", 0).unwrap_err();
            assert_eq!(r.code, RejectionCode::MalformedHeader, "{bad}");
            assert_eq!(r.challenge, Some(BASIC_CHALLENGE));
        }
        assert!(!format!("{auth:?}").contains("s3cret"));
        assert_eq!(verify(&InboundAuth::default(), &[], b"", 0), Ok(()));
    }
}
