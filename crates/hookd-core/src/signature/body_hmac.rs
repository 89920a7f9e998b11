//! Body HMAC: HMAC-SHA256 of the raw body alone, keyed with the secret's UTF-8 bytes, in one
//! header, base64 or lower-case hex, with an optional prefix. Frappe sends it base64 in
//! `X-Frappe-Webhook-Signature`; GitHub sends it hex as `sha256=<hex>` in `X-Hub-Signature-256`.
//! There is no timestamp: receivers who need replay protection use the `standard` scheme.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::{HmacSha256, SigningSecret, VerifyError};

/// The header the signature goes in when none is configured.
pub const DEFAULT_HMAC_HEADER: &str = "X-Hookd-Signature";

/// How the HMAC's 32 bytes are written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacEncoding {
    /// Standard base64 with padding (Frappe, Shopify).
    #[default]
    Base64,
    /// Lower-case hex (GitHub).
    Hex,
}

impl HmacEncoding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Base64 => "base64",
            Self::Hex => "hex",
        }
    }

    /// Parses `base64` or `hex`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "base64" => Some(Self::Base64),
            "hex" => Some(Self::Hex),
            _ => None,
        }
    }

    fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Base64 => B64.encode(bytes),
            Self::Hex => hex::encode(bytes),
        }
    }

    /// The bytes `text` encodes, or `None` when it is not this encoding.
    pub(crate) fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Self::Base64 => B64.decode(text).ok(),
            Self::Hex => hex::decode(text).ok(),
        }
    }
}

fn mac(secret: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac
}

/// The header value for `body`: `prefix` then the encoded HMAC.
pub fn sign_hmac_sha256(
    secret: &SigningSecret,
    body: &[u8],
    encoding: HmacEncoding,
    prefix: Option<&str>,
) -> String {
    let digest = mac(secret.expose(), body).finalize().into_bytes();
    format!("{}{}", prefix.unwrap_or(""), encoding.encode(&digest))
}

/// Verifies `value`, the received value of header `header`, against `body`.
pub fn verify_hmac_sha256(
    secret: &str,
    header: &str,
    value: Option<&str>,
    body: &[u8],
    encoding: HmacEncoding,
    prefix: Option<&str>,
) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::InvalidSecret("must not be empty".into()));
    }
    let value = value.ok_or_else(|| VerifyError::MissingHeader(header.to_owned()))?;
    let prefix = prefix.unwrap_or("");
    let encoded = value
        .strip_prefix(prefix)
        .ok_or_else(|| VerifyError::malformed(header, format!("must start with `{prefix}`")))?;
    let given = encoding.decode(encoded).ok_or_else(|| {
        VerifyError::malformed(
            header,
            format!("is not {} after the prefix", encoding.name()),
        )
    })?;
    mac(secret, body)
        .verify_slice(&given)
        .map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::tests::vectors;

    /// `(vector group, encoding, prefix)`: GitHub is hex with `sha256=`; the Frappe/Shopify one
    /// is base64 without a prefix.
    const GROUPS: [(&str, HmacEncoding, Option<&str>); 2] = [
        ("github", HmacEncoding::Hex, Some("sha256=")),
        ("body_hmac_base64", HmacEncoding::Base64, None),
    ];

    #[test]
    fn body_hmac_vectors_sign_and_verify() {
        for (group, encoding, prefix) in GROUPS {
            for v in vectors()[group].as_array().unwrap() {
                let raw = v["secret"].as_str().unwrap();
                let secret = SigningSecret::parse_plain(raw).unwrap();
                let body = v["body"].as_str().unwrap().as_bytes();
                let want = v["signature"].as_str().unwrap();
                assert_eq!(
                    sign_hmac_sha256(&secret, body, encoding, prefix),
                    want,
                    "{group}"
                );
                let r = verify_hmac_sha256(raw, "X-Sig", Some(want), body, encoding, prefix);
                assert_eq!(r, Ok(()), "{group}");
            }
        }
    }

    #[test]
    fn body_hmac_failures_say_why() {
        let all = vectors();
        let v = &all["github"][0];
        let secret = v["secret"].as_str().unwrap();
        let body = v["body"].as_str().unwrap().as_bytes();
        let good = v["signature"].as_str().unwrap();
        let check = |value: Option<&str>, body: &[u8]| {
            verify_hmac_sha256(
                secret,
                "X-Hub-Signature-256",
                value,
                body,
                HmacEncoding::Hex,
                Some("sha256="),
            )
        };
        assert_eq!(
            check(Some(good), b"Hello, World?"),
            Err(VerifyError::BadSignature)
        );
        let upper = format!("sha256={}", good["sha256=".len()..].to_uppercase());
        assert_eq!(
            check(Some(&upper), body),
            Ok(()),
            "hex is read in either case"
        );
        assert_eq!(
            check(None, body),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256".into()))
        );
        for bad in [
            &good["sha256=".len()..],
            "sha256=zz",
            "sha256=abc",
            "sha256=é",
        ] {
            assert!(
                matches!(
                    check(Some(bad), body),
                    Err(VerifyError::MalformedHeader { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(check(Some("sha256="), body), Err(VerifyError::BadSignature));
        let r = verify_hmac_sha256("", "X", Some(good), body, HmacEncoding::Hex, None);
        assert!(matches!(r, Err(VerifyError::InvalidSecret(_))));
    }
}
