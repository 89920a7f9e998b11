//! Admin API authentication: `Authorization: Bearer <token>` on every `/api/v1` call.
//!
//! Tokens are random and long, so storing their SHA-256 is enough; the configured `admin_token`
//! is compared in constant time. Known-good hashes are cached so a busy API does not ask the
//! database on every call.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hookd_core::store::TokenRecord;
use hookd_core::{Store, StoreError, TokenId};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// Prefix of admin tokens, so they are recognisable in secret scanners.
const TOKEN_PREFIX: &str = "hk_";

/// Hashes of tokens already checked against the database.
#[derive(Debug, Default)]
pub struct TokenCache(Mutex<HashSet<String>>);

/// A new random admin token.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Lower-case hex SHA-256 of a token: what the database stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates and stores a new admin token named `name`; returns the token (shown once).
pub async fn create_token(store: &dyn Store, name: &str) -> Result<String, StoreError> {
    let token = generate_token();
    let now = crate::now_ms();
    let record = TokenRecord {
        id: TokenId::generate(now),
        name: name.to_owned(),
        hash: hash_token(&token),
        created_at: now,
    };
    store.insert_token(&record).await?;
    Ok(token)
}

/// Middleware: lets the request through only with a valid admin token.
pub async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    if !is_valid(&state, given).await? {
        return Err(ApiError::unauthorized());
    }
    Ok(next.run(req).await)
}

async fn is_valid(state: &AppState, token: &str) -> Result<bool, ApiError> {
    if let Some(configured) = &state.settings.admin_token {
        if bool::from(configured.as_bytes().ct_eq(token.as_bytes())) {
            return Ok(true);
        }
    }
    let hash = hash_token(token);
    if state
        .tokens
        .0
        .lock()
        .expect("token cache lock")
        .contains(&hash)
    {
        return Ok(true);
    }
    let known = state.store.token_hash_exists(&hash).await?;
    if known {
        state
            .tokens
            .0
            .lock()
            .expect("token cache lock")
            .insert(hash);
    }
    Ok(known)
}
