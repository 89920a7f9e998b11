//! Standard Webhooks `v1a`: an Ed25519 signature over `{id}.{timestamp}.{body}`, sent in
//! `webhook-signature` as `v1a,<base64>` beside the same `webhook-id` and `webhook-timestamp` as
//! `v1`. The secret is `whsk_` + base64 of the 64-byte keypair (32-byte seed, then the 32-byte
//! public key); receivers verify with `whpk_` + base64 of the public key alone.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;

use super::{signed_content, SigningSecret, StandardHeaders, VerifyError};

/// Prefix of Standard Webhooks asymmetric secrets (the whole keypair).
pub const WHSK_PREFIX: &str = "whsk_";
/// Prefix of Standard Webhooks public keys.
pub const WHPK_PREFIX: &str = "whpk_";

/// A new random `whsk_` keypair.
pub(super) fn generate_secret() -> String {
    let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
    rand::thread_rng().fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    format!("{WHSK_PREFIX}{}", B64.encode(key.to_keypair_bytes()))
}

/// Decodes a `whsk_` secret, checking that its second half is the public key of its first.
pub(super) fn signing_key(secret: &str) -> Result<SigningKey, String> {
    let body = secret
        .strip_prefix(WHSK_PREFIX)
        .ok_or_else(|| format!("must start with `{WHSK_PREFIX}`"))?;
    let bytes = B64
        .decode(body)
        .map_err(|_| format!("is not valid base64 after `{WHSK_PREFIX}`"))?;
    let pair: [u8; ed25519_dalek::KEYPAIR_LENGTH] = bytes.as_slice().try_into().map_err(|_| {
        let n = bytes.len();
        format!("must hold a 64-byte keypair (seed, then public key), not {n} bytes")
    })?;
    SigningKey::from_keypair_bytes(&pair)
        .map_err(|_| "the last 32 bytes are not the public key of the first 32".to_string())
}

/// The `whpk_` public key of a `whsk_` secret.
pub(super) fn public_key(secret: &str) -> Result<String, String> {
    let key = signing_key(secret)?.verifying_key();
    Ok(format!("{WHPK_PREFIX}{}", B64.encode(key.to_bytes())))
}

/// The key to verify with: a `whpk_` public key, or the public half of a `whsk_` secret.
fn verifying_key(key: &str) -> Result<VerifyingKey, String> {
    if key.starts_with(WHSK_PREFIX) {
        return signing_key(key).map(|k| k.verifying_key());
    }
    let body = key.strip_prefix(WHPK_PREFIX).ok_or_else(|| {
        format!("must start with `{WHPK_PREFIX}` (or be a `{WHSK_PREFIX}` secret)")
    })?;
    let bytes = B64
        .decode(body)
        .map_err(|_| format!("is not valid base64 after `{WHPK_PREFIX}`"))?;
    let bytes: [u8; ed25519_dalek::PUBLIC_KEY_LENGTH] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("must hold a 32-byte public key, not {} bytes", bytes.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "is not an Ed25519 public key".to_string())
}

/// Checks a `whpk_` public key, as a receiver of `v1a` signatures configures it.
pub fn parse_public_key(key: &str) -> Result<(), String> {
    if !key.starts_with(WHPK_PREFIX) {
        return Err(format!("must start with `{WHPK_PREFIX}`"));
    }
    verifying_key(key).map(|_| ())
}

/// One `webhook-signature` entry for a `whsk_` secret: `v1a,<base64>`. Fails when the secret is
/// not a `whsk_` keypair.
pub fn sign_ed25519(
    secret: &SigningSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let key = signing_key(secret.expose())?;
    let signature = key.sign(&signed_content(id, &timestamp.to_string(), body));
    Ok(format!("v1a,{}", B64.encode(signature.to_bytes())))
}

/// Verifies Standard Webhooks headers (`v1a` entries) at time `now_secs` with `key`: a `whpk_`
/// public key or a `whsk_` secret.
pub fn verify_ed25519(
    key: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    let key = verifying_key(key).map_err(VerifyError::InvalidSecret)?;
    let received = StandardHeaders::check(id, timestamp, signature, body, now_secs)?;
    received.any_entry_matches("v1a,", |given| {
        Signature::from_slice(given)
            .is_ok_and(|sig| key.verify_strict(&received.content, &sig).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::vectors;

    fn check(
        v: &serde_json::Value,
        key: &str,
        signature: &str,
        now: i64,
    ) -> Result<(), VerifyError> {
        verify_ed25519(
            key,
            v["id"].as_str(),
            Some(&v["timestamp"].as_i64().unwrap().to_string()),
            Some(signature),
            v["body"].as_str().unwrap().as_bytes(),
            now,
        )
    }

    #[test]
    fn v1a_vectors_sign_derive_and_verify() {
        for v in vectors()["standard_webhooks_v1a"].as_array().unwrap() {
            let raw = v["secret"].as_str().unwrap();
            let secret = SigningSecret::parse_ed25519(raw).unwrap();
            let public = v["public_key"].as_str().unwrap();
            let ts = v["timestamp"].as_i64().unwrap();
            let body = v["body"].as_str().unwrap().as_bytes();
            let want = v["signature"].as_str().unwrap();
            let id = v["id"].as_str().unwrap();
            assert_eq!(sign_ed25519(&secret, id, ts, body).unwrap(), want);
            assert_eq!(secret.public_key().as_deref(), Some(public));
            assert_eq!(check(v, public, want, ts), Ok(()));
            assert_eq!(
                check(v, raw, want, ts),
                Ok(()),
                "a whsk_ secret verifies too"
            );
        }
    }

    #[test]
    fn v1a_failures_say_why() {
        let all = vectors();
        let v = &all["standard_webhooks_v1a"][0];
        let public = v["public_key"].as_str().unwrap();
        let good = v["signature"].as_str().unwrap();
        let ts = v["timestamp"].as_i64().unwrap();
        let other = SigningSecret::generate_for(&crate::webhook::SignatureConfig::Ed25519);
        let other_pk = other.public_key().unwrap();
        assert_eq!(
            check(v, &other_pk, good, ts),
            Err(VerifyError::BadSignature)
        );
        let tampered = format!("{}A==", &good[..good.len() - 3]);
        assert_eq!(
            check(v, public, &tampered, ts),
            Err(VerifyError::BadSignature)
        );
        let list = format!("v1,abc {tampered} {good}");
        assert_eq!(check(v, public, &list, ts), Ok(()));
        assert!(matches!(
            check(v, public, "v1,abc", ts),
            Err(VerifyError::MalformedHeader { .. })
        ));
        assert!(matches!(
            check(v, public, good, ts + 301),
            Err(VerifyError::StaleTimestamp(_))
        ));
        for bad in [
            "whpk_",
            "whpk_AAAA",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "",
        ] {
            let r = check(v, bad, good, ts);
            assert!(matches!(r, Err(VerifyError::InvalidSecret(_))), "{bad}");
        }
    }

    #[test]
    fn whsk_rules() {
        let all = vectors();
        let raw = all["standard_webhooks_v1a"][0]["secret"].as_str().unwrap();
        let body = raw.strip_prefix(WHSK_PREFIX).unwrap();
        let mut pair = B64.decode(body).unwrap();
        assert!(
            SigningSecret::parse_ed25519(&format!("whsk_{}", B64.encode(&pair[..32]))).is_err()
        );
        pair[40] ^= 1;
        let mismatched = format!("whsk_{}", B64.encode(&pair));
        assert!(SigningSecret::parse_ed25519(&mismatched).is_err());
        assert!(SigningSecret::parse_ed25519("whsk_!!").is_err());
        assert!(SigningSecret::parse_ed25519(&format!("whsec_{body}")).is_err());
    }
}
