//! Signing secrets and the signature schemes hookd speaks.
//!
//! - Standard Webhooks `v1` (here): HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64 key
//!   after `whsec_`, sent as `webhook-signature: v1,<base64>`.
//! - Standard Webhooks `v1a` ([`ed25519`]): an Ed25519 signature over the same content, signed with
//!   a `whsk_` keypair and checked with its `whpk_` public key.
//! - Body HMAC ([`body_hmac`]): HMAC-SHA256 of the raw body alone, in one configurable header
//!   (Frappe, GitHub, Shopify style).
//!
//! Pure functions: no IO, no clock (callers pass `now`). HMACs are compared in constant time
//! (`hmac::Mac::verify_slice`).

pub mod body_hmac;
pub mod ed25519;

use std::fmt;

use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use body_hmac::{sign_hmac_sha256, verify_hmac_sha256, HmacEncoding, DEFAULT_HMAC_HEADER};
pub use ed25519::{sign_ed25519, verify_ed25519, WHPK_PREFIX, WHSK_PREFIX};

use crate::webhook::SignatureConfig;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of Standard Webhooks symmetric secrets.
pub const WHSEC_PREFIX: &str = "whsec_";
/// Bytes of key material hookd generates for a new `whsec_` or plain secret.
const GENERATED_KEY_BYTES: usize = 32;
/// Standard Webhooks' tolerance for `webhook-timestamp`, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// A webhook's signing secret. Never printed: `Debug` shows a mask.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SigningSecret(String);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(****)")
    }
}

impl SigningSecret {
    /// A new random Standard Webhooks secret.
    pub fn generate_standard() -> Self {
        let mut key = [0u8; GENERATED_KEY_BYTES];
        rand::thread_rng().fill_bytes(&mut key);
        Self(format!("{WHSEC_PREFIX}{}", B64.encode(key)))
    }

    /// Checks a `whsec_` secret: base64 after the prefix, 24 to 64 bytes of key.
    pub fn parse_standard(s: &str) -> Result<Self, String> {
        decode_whsec(s).map(|_| Self(s.to_owned()))
    }

    /// A new random secret of the kind `scheme` signs with: `whsec_` for `standard` (and `none`,
    /// so that switching to `standard` later keeps working), a `whsk_` keypair for `ed25519`, and
    /// 32 random bytes as unpadded base64url text for `hmac-sha256`.
    pub fn generate_for(scheme: &SignatureConfig) -> Self {
        match scheme {
            SignatureConfig::Standard | SignatureConfig::None => Self::generate_standard(),
            SignatureConfig::Ed25519 => Self(ed25519::generate_secret()),
            SignatureConfig::HmacSha256 { .. } => {
                let mut key = [0u8; GENERATED_KEY_BYTES];
                rand::thread_rng().fill_bytes(&mut key);
                Self(URL_SAFE_NO_PAD.encode(key))
            }
        }
    }

    /// Checks `s` against the rules of `scheme`'s secrets.
    pub fn parse_for(scheme: &SignatureConfig, s: &str) -> Result<Self, String> {
        match scheme {
            SignatureConfig::Standard => Self::parse_standard(s),
            SignatureConfig::Ed25519 => Self::parse_ed25519(s),
            SignatureConfig::HmacSha256 { .. } | SignatureConfig::None => Self::parse_plain(s),
        }
    }

    /// Checks a `whsk_` secret: base64 of a 64-byte keypair whose second half is the public key of
    /// the first.
    pub fn parse_ed25519(s: &str) -> Result<Self, String> {
        ed25519::signing_key(s).map(|_| Self(s.to_owned()))
    }

    /// Whether this secret can sign under `scheme` (a scheme change may leave one that cannot).
    pub fn fits(&self, scheme: &SignatureConfig) -> bool {
        Self::parse_for(scheme, &self.0).is_ok()
    }

    /// The `whpk_` public key receivers verify with, for `whsk_` secrets; `None` for others.
    pub fn public_key(&self) -> Option<String> {
        ed25519::public_key(&self.0).ok()
    }

    /// A plain secret for schemes that use the string itself as the key.
    pub fn parse_plain(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The secret itself, for signing and for `GET /webhooks/{id}/secret`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The text, for a store to seal and open at rest; nothing else may change it (it skips
    /// the scheme's checks).
    pub fn stored_text_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

fn decode_whsec(s: &str) -> Result<Vec<u8>, String> {
    let body = s
        .strip_prefix(WHSEC_PREFIX)
        .ok_or_else(|| format!("must start with `{WHSEC_PREFIX}`"))?;
    // Padded or not: the Standard Webhooks libraries accept both.
    let key = B64
        .decode(body)
        .or_else(|_| STANDARD_NO_PAD.decode(body))
        .map_err(|_| "is not valid base64 after `whsec_`".to_string())?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "must hold 24 to 64 bytes of key, not {}",
            key.len()
        ));
    }
    Ok(key)
}

/// The `webhook-signature` value for one `whsec_` secret: `v1,<base64>`.
pub fn sign_standard(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    // Secrets are checked when saved; an undecodable one signs with its raw bytes rather than panic.
    let key = decode_whsec(secret.expose()).unwrap_or_else(|_| secret.expose().as_bytes().to_vec());
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(&signed_content(id, &timestamp.to_string(), body));
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header `{0}`")]
    MissingHeader(String),
    #[error("malformed header `{header}`: {reason}")]
    MalformedHeader { header: String, reason: String },
    #[error("timestamp is {0} s away from now (more than {TIMESTAMP_TOLERANCE_SECS} s)")]
    StaleTimestamp(i64),
    #[error("no signature matches")]
    BadSignature,
    #[error("invalid secret: {0}")]
    InvalidSecret(String),
}

impl VerifyError {
    fn malformed(header: &str, reason: impl Into<String>) -> Self {
        Self::MalformedHeader {
            header: header.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Verifies Standard Webhooks headers (`v1` entries) at time `now_secs`.
pub fn verify_standard(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    let key = decode_whsec(secret).map_err(VerifyError::InvalidSecret)?;
    let received = StandardHeaders::check(id, timestamp, signature, body, now_secs)?;
    received.any_entry_matches("v1,", |given| {
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(&received.content);
        mac.verify_slice(given).is_ok()
    })
}

/// The three Standard Webhooks headers, present and with a fresh, well-formed timestamp.
struct StandardHeaders<'a> {
    /// What is signed: `{id}.{timestamp}.{body}`.
    content: Vec<u8>,
    /// The space-separated `webhook-signature` entries.
    signatures: &'a str,
}

impl<'a> StandardHeaders<'a> {
    fn check(
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&'a str>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Self, VerifyError> {
        let missing = |h: &str| VerifyError::MissingHeader(h.to_owned());
        let id = id.ok_or_else(|| missing("webhook-id"))?;
        let ts_raw = timestamp.ok_or_else(|| missing("webhook-timestamp"))?;
        let signatures = signature.ok_or_else(|| missing("webhook-signature"))?;
        if ts_raw.is_empty() || !ts_raw.bytes().all(|b| b.is_ascii_digit()) {
            let reason = "must be a plain integer of seconds";
            return Err(VerifyError::malformed("webhook-timestamp", reason));
        }
        let ts: i64 = ts_raw
            .parse()
            .map_err(|_| VerifyError::malformed("webhook-timestamp", "out of range"))?;
        if (now_secs - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
            return Err(VerifyError::StaleTimestamp(now_secs - ts));
        }
        Ok(Self {
            content: signed_content(id, ts_raw, body),
            signatures,
        })
    }

    /// Passes when any entry tagged `version` (`v1,`, `v1a,`) holds base64 that `matches`.
    fn any_entry_matches(
        &self,
        version: &str,
        matches: impl Fn(&[u8]) -> bool,
    ) -> Result<(), VerifyError> {
        let mut saw_version = false;
        for entry in self.signatures.split(' ').filter(|e| !e.is_empty()) {
            let Some(b64) = entry.strip_prefix(version) else {
                continue;
            };
            saw_version = true;
            if B64.decode(b64).is_ok_and(|given| matches(&given)) {
                return Ok(());
            }
        }
        if saw_version {
            Err(VerifyError::BadSignature)
        } else {
            let reason = format!("no `{version}` entry");
            Err(VerifyError::malformed("webhook-signature", reason))
        }
    }
}

/// The bytes Standard Webhooks signs: `{id}.{timestamp}.{body}`.
fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
    content.extend_from_slice(body);
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_are_masked_in_debug() {
        let s = SigningSecret::generate_standard();
        assert!(SigningSecret::parse_standard(s.expose()).is_ok());
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn each_scheme_generates_a_secret_that_fits_it() {
        let hmac = SignatureConfig::HmacSha256 {
            header: DEFAULT_HMAC_HEADER.into(),
            encoding: HmacEncoding::Hex,
            prefix: None,
        };
        for scheme in [
            SignatureConfig::Standard,
            SignatureConfig::None,
            SignatureConfig::Ed25519,
            hmac,
        ] {
            let s = SigningSecret::generate_for(&scheme);
            assert!(s.fits(&scheme), "{}", scheme.name());
            let public = s.public_key();
            assert_eq!(public.is_some(), scheme == SignatureConfig::Ed25519);
        }
        let whsec = SigningSecret::generate_standard();
        assert!(!whsec.fits(&SignatureConfig::Ed25519));
        assert!(SigningSecret::parse_for(&SignatureConfig::Ed25519, "whsk_").is_err());
        assert!(SigningSecret::parse_plain("").is_err());
    }

    #[test]
    fn whsec_rules() {
        assert!(SigningSecret::parse_standard("whsec_").is_err());
        assert!(SigningSecret::parse_standard("whsec_!!!").is_err());
        assert!(SigningSecret::parse_standard("nope").is_err());
        // 16 bytes: too short.
        assert!(SigningSecret::parse_standard("whsec_AAAAAAAAAAAAAAAAAAAAAA==").is_err());
    }

    #[test]
    fn unpadded_whsec_secrets_sign_as_their_padded_form() {
        let padded = SigningSecret::generate_standard();
        let unpadded = padded.expose().trim_end_matches('=');
        assert_ne!(unpadded, padded.expose(), "a 32-byte key has padding");
        let unpadded = SigningSecret::parse_standard(unpadded).expect("unpadded is accepted");
        let body = b"{\"a\":1}";
        let signature = sign_standard(&unpadded, "msg_1", 1_700_000_000, body);
        assert_eq!(
            signature,
            sign_standard(&padded, "msg_1", 1_700_000_000, body)
        );
        let verified = verify_standard(
            unpadded.expose(),
            Some("msg_1"),
            Some("1700000000"),
            Some(&signature),
            body,
            1_700_000_000,
        );
        assert!(verified.is_ok(), "{verified:?}");
    }

    /// The published vectors, copied from the shared signature fixtures.
    pub(super) fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../fixtures/signatures.json")).unwrap()
    }

    fn check(v: &serde_json::Value, signature: &str, now: i64) -> Result<(), VerifyError> {
        verify_standard(
            v["secret"].as_str().unwrap(),
            v["id"].as_str(),
            Some(&v["timestamp"].as_i64().unwrap().to_string()),
            Some(signature),
            v["body"].as_str().unwrap().as_bytes(),
            now,
        )
    }

    #[test]
    fn standard_v1_vectors_sign_and_verify() {
        for v in vectors()["standard_webhooks_v1"].as_array().unwrap() {
            let secret = SigningSecret::parse_standard(v["secret"].as_str().unwrap()).unwrap();
            let ts = v["timestamp"].as_i64().unwrap();
            let body = v["body"].as_str().unwrap().as_bytes();
            let want = v["signature"].as_str().unwrap();
            assert_eq!(
                sign_standard(&secret, v["id"].as_str().unwrap(), ts, body),
                want
            );
            assert_eq!(check(v, want, ts), Ok(()));
        }
    }

    #[test]
    fn standard_v1_must_fail_vectors_fail() {
        for v in vectors()["standard_webhooks_v1_must_fail"]
            .as_array()
            .unwrap()
        {
            let ts = v["timestamp"].as_i64().unwrap();
            assert_eq!(
                check(v, v["signature"].as_str().unwrap(), ts),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn standard_rules() {
        let all = vectors();
        let v = &all["standard_webhooks_v1"][0];
        let good = v["signature"].as_str().unwrap();
        let ts = v["timestamp"].as_i64().unwrap();
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        // Any matching entry among several passes; without it the list fails.
        let list = format!("{wrong} v2,anything {good} {wrong}");
        assert_eq!(check(v, &list, ts), Ok(()));
        let list = format!("{wrong} v2,anything {wrong}");
        assert_eq!(check(v, &list, ts), Err(VerifyError::BadSignature));
        // Empty, truncated, or missing pieces fail cleanly.
        assert_eq!(check(v, "v1,", ts), Err(VerifyError::BadSignature));
        assert_eq!(check(v, &good[..20], ts), Err(VerifyError::BadSignature));
        let secret = v["secret"].as_str().unwrap();
        let body = v["body"].as_str().unwrap().as_bytes();
        let id = v["id"].as_str();
        let tss = ts.to_string();
        assert_eq!(
            verify_standard(secret, None, Some(&tss), Some(good), body, ts),
            Err(VerifyError::MissingHeader("webhook-id".into()))
        );
        assert_eq!(
            verify_standard(secret, id, None, Some(good), body, ts),
            Err(VerifyError::MissingHeader("webhook-timestamp".into()))
        );
        assert_eq!(
            verify_standard(secret, id, Some(&tss), None, body, ts),
            Err(VerifyError::MissingHeader("webhook-signature".into()))
        );
        // Timestamps: within 300 s either way, and a plain integer.
        assert_eq!(check(v, good, ts + 300), Ok(()));
        assert!(matches!(
            check(v, good, ts + 301),
            Err(VerifyError::StaleTimestamp(_))
        ));
        assert!(matches!(
            check(v, good, ts - 301),
            Err(VerifyError::StaleTimestamp(_))
        ));
        for bad in ["12abc", "1e9", "1.5", ""] {
            let r = verify_standard(secret, id, Some(bad), Some(good), body, ts);
            assert!(
                matches!(r, Err(VerifyError::MalformedHeader { .. })),
                "{bad}"
            );
        }
        // An empty secret is refused.
        let r = verify_standard("whsec_", id, Some(&tss), Some(good), body, ts);
        assert!(matches!(r, Err(VerifyError::InvalidSecret(_))));
    }
}
