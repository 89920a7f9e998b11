//! Secrets at rest, sealed by envelope encryption. Every secret of a webhook or inbound-hook spec
//! ([`WebhookSpec::secrets_mut`], [`InboundSpec::secrets_mut`]) is stored as
//! `hookd-sealed:v1:<data key id>:<base64url(nonce ‖ ciphertext)>`: XChaCha20-Poly1305 under a
//! data key, with a random 24-byte nonce per value and `<record id>/<field path>` as associated
//! data, so a sealed value moved to another row or field does not open. The rest of the spec
//! stays plain JSON.
//!
//! Data keys live in `secret_keys`, each sealed by a master key from configuration
//! (`secrets_key`; `secrets_old_keys` are still read, never written with). One data key is
//! `active`: writes read it inside their transaction and seal with it. A rotation marks it
//! `retiring`, adds a new active one, reseals every value, then deletes the retiring keys.
//! Processes learn a data key they have not seen from the table when a value needs it.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hookd_core::inbound::record::InboundHook;
use hookd_core::inbound::spec::InboundSpec;
use hookd_core::store::{KeyRotation, StoreError, StoreResult};
use hookd_core::webhook::{Webhook, WebhookSpec};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::rows::store_err;
use crate::RowsAffected;

/// What a sealed value starts with; a spec value without it is plain (written before sealing).
pub const SEALED_PREFIX: &str = "hookd-sealed:v1:";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Every data key, as a process learns them.
pub const KEYS: &str = "SELECT id, master_key_id, sealed, state FROM secret_keys ORDER BY id";
/// The data key writes seal with. PostgreSQL appends `FOR SHARE`, so a rotation's switch waits
/// for the writes that read the old one.
pub const ACTIVE: &str = "SELECT id FROM secret_keys WHERE state = 'active'";
/// `$1` id, `$2` master key id, `$3` the sealed key, `$4` state, `$5` created at. Nothing
/// happens when another process made the active key first (one `active` row, by index).
pub const INSERT_KEY: &str =
    "INSERT INTO secret_keys (id, master_key_id, sealed, state, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
pub const RETIRE_ACTIVE: &str = "UPDATE secret_keys SET state = 'retiring' WHERE state = 'active'";
pub const DELETE_RETIRING: &str = "DELETE FROM secret_keys WHERE state = 'retiring'";

/// A key from configuration; it seals the data keys, never a value.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// Reads a key as configured: 32 bytes in base64 (standard or URL alphabet, padded or not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or("must be base64 (make a key with `hookd secrets generate-key`)")?;
        if bytes.len() != KEY_BYTES {
            return Err(format!(
                "must be {KEY_BYTES} bytes in base64 (make a key with `hookd secrets \
                 generate-key`); this one is {} bytes",
                bytes.len()
            ));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// A new random key, as the text [`Self::parse`] reads.
    pub fn generate_text() -> String {
        STANDARD.encode(random::<KEY_BYTES>())
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"hookd master key id\0")
            .chain_update(bytes)
            .finalize();
        Self {
            id: format!("mk_{}", hex::encode(&digest[..6])),
            cipher: XChaCha20Poly1305::new_from_slice(bytes).expect("the key is 32 bytes"),
        }
    }

    /// A name for the key that does not reveal it, shown in errors and `secret_keys`.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A data key as stored in `secret_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub master_key_id: String,
    /// The key, sealed by its master key.
    pub sealed: String,
    /// `active` or `retiring`.
    pub state: String,
}

/// Why a secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "secrets_key: the database's secrets are sealed with master key {master}, but the \
         configured key (secrets_key, secrets_key_file or the key file beside the SQLite \
         database) is {configured} and secrets_old_keys holds no other match; configure the key \
         they were sealed with (a lost key means the stored secrets are lost)"
    )]
    UnknownMaster { master: String, configured: String },
    #[error(
        "secrets_key: data key {key} does not open with master key {master}: the key or its \
         row in secret_keys is not the one that sealed it"
    )]
    BadMaster { key: String, master: String },
    #[error(
        "{record}: {field} is sealed with data key {key}, which secret_keys does not hold: the \
         value cannot be read and must be set again"
    )]
    UnknownDataKey {
        record: String,
        field: String,
        key: String,
    },
    #[error("{record}: {field} does not open: its sealed value was altered or moved")]
    BadValue { record: String, field: String },
}

impl From<SecretsError> for StoreError {
    fn from(e: SecretsError) -> Self {
        StoreError::backend(e)
    }
}

impl From<SecretsError> for sqlx::Error {
    fn from(e: SecretsError) -> Self {
        sqlx::Error::Decode(Box::new(e))
    }
}

/// What a stored spec holding secrets is: the webhook and inbound-hook specs.
pub trait Sealable: Serialize + DeserializeOwned {
    fn secrets(&mut self) -> Vec<(String, &mut String)>;
}

impl Sealable for WebhookSpec {
    fn secrets(&mut self) -> Vec<(String, &mut String)> {
        self.secrets_mut()
    }
}

impl Sealable for InboundSpec {
    fn secrets(&mut self) -> Vec<(String, &mut String)> {
        self.secrets_mut()
    }
}

/// A stored record whose spec holds secrets.
pub trait Record {
    type Spec: Sealable;
    /// Its id (the associated data of its sealed values) and its spec.
    fn parts(&mut self) -> (&str, &mut Self::Spec);
}

impl Record for Webhook {
    type Spec = WebhookSpec;
    fn parts(&mut self) -> (&str, &mut WebhookSpec) {
        (self.id.as_str(), &mut self.spec)
    }
}

impl Record for InboundHook {
    type Spec = InboundSpec;
    fn parts(&mut self) -> (&str, &mut InboundSpec) {
        (self.id.as_str(), &mut self.spec)
    }
}

/// The records `$read` (a future of `sqlx::Result` of a `Vec` or an `Option` of [`Record`]s)
/// gives, their secrets opened from `$pool` with `$keys` ([`open_records`]). A data key deleted
/// by a rotation between the read and the opening means the rows were resealed meanwhile: they
/// are read again, up to [`READ_ATTEMPTS`] times.
#[macro_export]
macro_rules! read_opened {
    ($pool:expr, $keys:expr, $read:expr) => {{
        let mut attempt = 1;
        loop {
            let mut found = $read.await.map_err($crate::rows::store_err)?;
            match $crate::secrets::open_records(&$pool, &$keys, found.as_mut_slice()).await {
                Ok(()) => break Ok(found),
                Err(e)
                    if attempt < $crate::secrets::READ_ATTEMPTS
                        && $crate::secrets::resealed_meanwhile(&e) =>
                {
                    attempt += 1;
                }
                Err(e) => break Err(e),
            }
        }
    }};
}

/// Reads a store makes of records whose data key a rotation deleted between the read and the
/// opening ([`resealed_meanwhile`]) before it gives up.
pub const READ_ATTEMPTS: u32 = 3;

/// Whether opening failed because a rotation deleted the data key after the rows were read:
/// they were resealed, and reading them again finds the new key.
pub fn resealed_meanwhile(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(inner) => matches!(
            inner.downcast_ref::<SecretsError>(),
            Some(SecretsError::UnknownDataKey { .. })
        ),
        _ => false,
    }
}

/// Opens the secrets of `records` read from the database, learning from `pool` first the data
/// keys this process lacks (a rotation elsewhere made them).
pub async fn open_records<DB, R>(pool: &Pool<DB>, keys: &Keys, records: &mut [R]) -> StoreResult<()>
where
    R: Record,
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    if records.iter_mut().any(|r| keys.lacks_key(r.parts().1)) {
        let mut conn = pool.acquire().await.map_err(store_err)?;
        let rows = load::<DB>(&mut conn).await.map_err(store_err)?;
        if let Err(e) = keys.learn(&rows) {
            // A key row this process cannot open matters only to the records sealed with it.
            if records.iter_mut().any(|r| keys.lacks_key(r.parts().1)) {
                return Err(e.into());
            }
        }
    }
    for record in records {
        let (id, spec) = record.parts();
        keys.open(id, spec)?;
    }
    Ok(())
}

/// The master keys a process was configured with and the data keys it has learned.
pub struct Keys {
    /// The first seals new data keys; the others only open old ones.
    masters: Vec<MasterKey>,
    data: RwLock<HashMap<String, XChaCha20Poly1305>>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.masters.iter().map(MasterKey::id).collect();
        f.debug_struct("Keys").field("masters", &ids).finish()
    }
}

impl Keys {
    /// Seals new data keys with `key`; opens data keys sealed by `key` or any of `old`.
    pub fn new(key: MasterKey, old: Vec<MasterKey>) -> Self {
        let mut masters = vec![key];
        masters.extend(old);
        Self {
            masters,
            data: RwLock::new(HashMap::new()),
        }
    }

    /// Keys under a new random master key that nothing keeps: for a database that lives only
    /// as long as the process (in memory, a test's).
    pub fn ephemeral() -> Self {
        let text = MasterKey::generate_text();
        Self::new(
            MasterKey::parse(&text).expect("a generated key parses"),
            Vec::new(),
        )
    }

    /// Opens every row not learned yet. Rows no configured master key opens are skipped and
    /// the first of them is the error; the others are learned all the same.
    pub fn learn(&self, rows: &[KeyRow]) -> Result<(), SecretsError> {
        let mut first_error = None;
        for row in rows {
            if self.knows(&row.id) {
                continue;
            }
            match self.open_key(row) {
                Ok(cipher) => {
                    let mut data = self.data.write().expect("keys lock");
                    data.insert(row.id.clone(), cipher);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn open_key(&self, row: &KeyRow) -> Result<XChaCha20Poly1305, SecretsError> {
        let master = self
            .masters
            .iter()
            .find(|m| m.id == row.master_key_id)
            .ok_or_else(|| SecretsError::UnknownMaster {
                master: row.master_key_id.clone(),
                configured: self.masters[0].id.clone(),
            })?;
        let bad = || SecretsError::BadMaster {
            key: row.id.clone(),
            master: master.id.clone(),
        };
        let bytes = open_bytes(&master.cipher, &key_aad(&row.id), &row.sealed).ok_or_else(bad)?;
        XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| bad())
    }

    fn knows(&self, id: &str) -> bool {
        self.data.read().expect("keys lock").contains_key(id)
    }

    /// A new random data key, sealed by the first master key, to be stored with `state`.
    pub fn new_data_key(&self, state: &str) -> KeyRow {
        let id = format!("dk_{}", hex::encode(random::<8>()));
        let master = &self.masters[0];
        KeyRow {
            sealed: seal_bytes(&master.cipher, &key_aad(&id), &random::<KEY_BYTES>()),
            master_key_id: master.id.clone(),
            state: state.to_owned(),
            id,
        }
    }

    /// The data keys `spec`'s values are sealed with; `None` for a plain value.
    pub fn key_ids<S: Sealable>(spec: &mut S) -> Vec<Option<String>> {
        spec.secrets()
            .into_iter()
            .map(|(_, v)| sealed_key_id(v).map(str::to_owned))
            .collect()
    }

    /// Whether some value of `spec` is sealed with a data key this process has not learned.
    pub fn lacks_key<S: Sealable>(&self, spec: &mut S) -> bool {
        Self::key_ids(spec)
            .iter()
            .flatten()
            .any(|id| !self.knows(id))
    }

    /// `spec` as stored JSON, its secrets sealed with data key `key_id` for record `record`.
    pub fn seal<S: Sealable + Clone>(
        &self,
        key_id: &str,
        record: &str,
        spec: &S,
    ) -> Result<String, SecretsError> {
        let mut spec = spec.clone();
        {
            let data = self.data.read().expect("keys lock");
            let cipher = data
                .get(key_id)
                .ok_or_else(|| SecretsError::UnknownDataKey {
                    record: record.to_owned(),
                    field: "*".into(),
                    key: key_id.to_owned(),
                })?;
            for (field, value) in spec.secrets() {
                let sealed = seal_bytes(cipher, &value_aad(record, &field), value.as_bytes());
                *value = format!("{SEALED_PREFIX}{key_id}:{sealed}");
            }
        }
        Ok(serde_json::to_string(&spec).expect("a spec serializes"))
    }

    /// Opens every sealed value of `spec` (of record `record`) in place; plain values stay.
    pub fn open<S: Sealable>(&self, record: &str, spec: &mut S) -> Result<(), SecretsError> {
        let data = self.data.read().expect("keys lock");
        for (field, value) in spec.secrets() {
            let Some(rest) = value.strip_prefix(SEALED_PREFIX) else {
                continue;
            };
            let (key_id, sealed) = rest.split_once(':').unwrap_or((rest, ""));
            let cipher = data
                .get(key_id)
                .ok_or_else(|| SecretsError::UnknownDataKey {
                    record: record.to_owned(),
                    field: field.clone(),
                    key: key_id.to_owned(),
                })?;
            let bad = || SecretsError::BadValue {
                record: record.to_owned(),
                field: field.clone(),
            };
            let plain = open_bytes(cipher, &value_aad(record, &field), sealed).ok_or_else(bad)?;
            *value = String::from_utf8(plain).map_err(|_| bad())?;
        }
        Ok(())
    }
}

/// The data key id of a sealed value, `None` for a plain one.
fn sealed_key_id(value: &str) -> Option<&str> {
    let rest = value.strip_prefix(SEALED_PREFIX)?;
    Some(rest.split_once(':').map_or(rest, |(id, _)| id))
}

fn key_aad(key_id: &str) -> String {
    format!("hookd data key/{key_id}")
}

fn value_aad(record: &str, field: &str) -> String {
    format!("{record}/{field}")
}

fn seal_bytes(cipher: &XChaCha20Poly1305, aad: &str, plain: &[u8]) -> String {
    let nonce_bytes = random::<NONCE_BYTES>();
    let nonce = XNonce::from(nonce_bytes);
    let payload = Payload {
        msg: plain,
        aad: aad.as_bytes(),
    };
    let sealed = cipher
        .encrypt(&nonce, payload)
        .expect("XChaCha20-Poly1305 seals any length hookd stores");
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&sealed);
    URL_SAFE_NO_PAD.encode(out)
}

fn open_bytes(cipher: &XChaCha20Poly1305, aad: &str, sealed: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < NONCE_BYTES {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let nonce = XNonce::try_from(nonce).ok()?;
    let payload = Payload {
        msg: ciphertext,
        aad: aad.as_bytes(),
    };
    cipher.decrypt(&nonce, payload).ok()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Every row of `secret_keys`.
pub async fn load<DB>(conn: &mut DB::Connection) -> sqlx::Result<Vec<KeyRow>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let rows = sqlx::query(KEYS).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                id: r.try_get("id")?,
                master_key_id: r.try_get("master_key_id")?,
                sealed: r.try_get("sealed")?,
                state: r.try_get("state")?,
            })
        })
        .collect()
}

/// Learns the data keys of `secret_keys` that `keys` lacks.
pub async fn refresh<DB>(conn: &mut DB::Connection, keys: &Keys) -> sqlx::Result<()>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let rows = load::<DB>(conn).await?;
    keys.learn(&rows)?;
    Ok(())
}

/// The id of the active data key, made (sealed by the first master key) when there is none;
/// call it inside the write's transaction. `active_sql` is [`ACTIVE`] in the backend's words.
pub async fn active_key<DB>(
    conn: &mut DB::Connection,
    active_sql: &str,
    keys: &Keys,
    now_ms: i64,
) -> sqlx::Result<String>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let mut made = false;
    loop {
        let found = sqlx::query(active_sql).fetch_optional(&mut *conn).await?;
        if let Some(row) = found {
            let id: String = row.try_get("id")?;
            if !keys.knows(&id) {
                refresh::<DB>(conn, keys).await?;
            }
            return Ok(id);
        }
        if made {
            return Err(sqlx::Error::Protocol(
                "secret_keys has no active key".into(),
            ));
        }
        insert_key::<DB>(conn, &keys.new_data_key("active"), now_ms).await?;
        made = true;
    }
}

/// `spec` of record `record` as stored: JSON with its secrets sealed by the active data key.
/// Call it inside the write's transaction; `active_sql` is [`ACTIVE`] in the backend's words.
pub async fn sealed<DB, S>(
    conn: &mut DB::Connection,
    active_sql: &str,
    keys: &Keys,
    record: &str,
    spec: &S,
    now_ms: i64,
) -> sqlx::Result<String>
where
    S: Sealable + Clone,
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let key = active_key::<DB>(conn, active_sql, keys, now_ms).await?;
    Ok(keys.seal(&key, record, spec)?)
}

/// Stores a data key row; `false` when it would have been a second active key (nothing stored).
pub async fn insert_key<DB>(
    conn: &mut DB::Connection,
    row: &KeyRow,
    now_ms: i64,
) -> sqlx::Result<bool>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let done = sqlx::query(INSERT_KEY)
        .bind(row.id.as_str())
        .bind(row.master_key_id.as_str())
        .bind(row.sealed.as_str())
        .bind(row.state.as_str())
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Which values a reseal pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Only values stored plain (before sealing existed): what every start does.
    Plain,
    /// Every value not sealed with the active key: what a rotation does.
    NotActive,
}

/// The tables whose `spec` holds secrets, with the spec type each holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecTable {
    Webhooks,
    InboundHooks,
}

impl SpecTable {
    pub const ALL: [SpecTable; 2] = [SpecTable::Webhooks, SpecTable::InboundHooks];

    fn name(self) -> &'static str {
        match self {
            Self::Webhooks => "webhooks",
            Self::InboundHooks => "inbound_hooks",
        }
    }

    /// Every row's id and stored spec.
    pub fn specs_sql(self) -> String {
        format!("SELECT id, spec FROM {} ORDER BY id", self.name())
    }

    /// Replaces the spec (`$1`) of row `$2` only if it is still `$3`: a write of the API in
    /// between wins, and the pass looks at the row again.
    pub fn swap_sql(self) -> String {
        format!(
            "UPDATE {} SET spec = $1 WHERE id = $2 AND spec = $3",
            self.name()
        )
    }

    /// `spec` (of row `id`) sealed with `active` when some value of it is one `mode` takes;
    /// `None` when it needs nothing. A key this process lacks is learned first.
    pub async fn resealed<DB>(
        self,
        conn: &mut DB::Connection,
        keys: &Keys,
        (active, mode): (&str, Reseal),
        id: &str,
        spec: &str,
    ) -> sqlx::Result<Option<String>>
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'r> String: Decode<'r, DB> + Type<DB>,
        for<'a> &'a str: ColumnIndex<DB::Row>,
    {
        match self {
            Self::Webhooks => reseal::<DB, WebhookSpec>(conn, keys, active, mode, id, spec).await,
            Self::InboundHooks => {
                reseal::<DB, InboundSpec>(conn, keys, active, mode, id, spec).await
            }
        }
    }
}

async fn reseal<DB, S>(
    conn: &mut DB::Connection,
    keys: &Keys,
    active: &str,
    mode: Reseal,
    id: &str,
    text: &str,
) -> sqlx::Result<Option<String>>
where
    S: Sealable + Clone,
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let mut spec: S = serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let ids = Keys::key_ids(&mut spec);
    let needs = |k: &Option<String>| match mode {
        Reseal::Plain => k.is_none(),
        Reseal::NotActive => k.as_deref() != Some(active),
    };
    if !ids.iter().any(needs) {
        return Ok(None);
    }
    if keys.lacks_key(&mut spec) {
        refresh::<DB>(conn, keys).await?;
    }
    keys.open(id, &mut spec)?;
    Ok(Some(keys.seal(active, id, &spec)?))
}

/// Reseals, with the active key, every spec of `table` holding a value `mode` takes; each
/// row is a conditional write. Returns how many rows changed.
pub async fn reseal_table<DB>(
    conn: &mut DB::Connection,
    keys: &Keys,
    active: (&str, Reseal),
    table: SpecTable,
) -> sqlx::Result<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let rows = sqlx::query(&table.specs_sql())
        .fetch_all(&mut *conn)
        .await?;
    let mut changed = 0;
    for row in rows {
        let id: String = row.try_get("id")?;
        let spec: String = row.try_get("spec")?;
        let Some(sealed) = table.resealed::<DB>(conn, keys, active, &id, &spec).await? else {
            continue;
        };
        let done = sqlx::query(&table.swap_sql())
            .bind(sealed)
            .bind(id.as_str())
            .bind(spec.as_str())
            .execute(&mut *conn)
            .await?;
        changed += done.rows_affected();
    }
    Ok(changed)
}

/// Reseals every table ([`reseal_table`]); returns how many rows changed.
pub async fn reseal_all<DB>(
    conn: &mut DB::Connection,
    keys: &Keys,
    active: (&str, Reseal),
) -> sqlx::Result<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let mut changed = 0;
    for table in SpecTable::ALL {
        changed += reseal_table::<DB>(conn, keys, active, table).await?;
    }
    Ok(changed)
}

/// What the store does once its schema is migrated, inside a transaction the backend opened
/// (so the active key it reads stays active until it commits): every data key must open with
/// the configured master keys (so a missing or wrong `secrets_key` stops the process before it
/// serves), an active key is made if there is none, and values still stored plain (from before
/// secrets were sealed) are sealed. Values sealed with another key are a rotation's to move.
/// Returns how many rows were sealed.
pub async fn prepare<DB>(
    conn: &mut DB::Connection,
    active_sql: &str,
    keys: &Keys,
    now_ms: i64,
) -> StoreResult<u64>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    let rows = load::<DB>(conn).await.map_err(store_err)?;
    keys.learn(&rows)?;
    let active = active_key::<DB>(conn, active_sql, keys, now_ms)
        .await
        .map_err(store_err)?;
    reseal_all::<DB>(conn, keys, (&active, Reseal::Plain))
        .await
        .map_err(store_err)
}

/// A whole rotation, inside one transaction the backend opened and holds alone (PostgreSQL
/// takes an advisory lock first; SQLite's `BEGIN IMMEDIATE` is its lock), so two rotations
/// take turns and an interrupted one changes nothing: the active data key retires, a new one
/// (sealed by the first master key) becomes active, every value not sealed with it is
/// resealed, and the retired keys are deleted. A write that read the old key commits before the
/// switch (PostgreSQL's `FOR SHARE` on the active key; SQLite's single writer), so the pass
/// sees it; later writes wait for the commit and seal with the new key.
pub async fn rotate<DB>(
    conn: &mut DB::Connection,
    keys: &Keys,
    now_ms: i64,
) -> StoreResult<KeyRotation>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    DB::QueryResult: RowsAffected,
{
    sqlx::query(RETIRE_ACTIVE)
        .execute(&mut *conn)
        .await
        .map_err(store_err)?;
    let active = keys.new_data_key("active");
    if !insert_key::<DB>(conn, &active, now_ms)
        .await
        .map_err(store_err)?
    {
        return Err(StoreError::Conflict(
            "another key rotation made an active key meanwhile; run the rotation again".into(),
        ));
    }
    let rows = load::<DB>(conn).await.map_err(store_err)?;
    keys.learn(&rows)?;
    let resealed = reseal_all::<DB>(conn, keys, (&active.id, Reseal::NotActive))
        .await
        .map_err(store_err)?;
    let retired = sqlx::query(DELETE_RETIRING)
        .execute(&mut *conn)
        .await
        .map_err(store_err)?
        .rows_affected();
    Ok(KeyRotation {
        key_id: active.id,
        master_key_id: active.master_key_id,
        resealed,
        retired,
    })
}

#[cfg(test)]
mod tests {
    use hookd_core::signature::SigningSecret;
    use hookd_core::webhook::AuthConfig;

    use super::*;

    fn spec() -> WebhookSpec {
        serde_json::from_value(serde_json::json!({
            "name": "n", "url": "https://example.com/", "method": "POST",
            "secret": SigningSecret::generate_standard().expose(),
            "auth": {"type": "bearer", "token": "t0ken"},
            "headers": {"X-Api-Key": "k3y", "X-Tenant": "acme"},
        }))
        .unwrap()
    }

    /// Keys with one learned data key, and its id.
    fn keys() -> (Keys, String) {
        let keys = Keys::ephemeral();
        let row = keys.new_data_key("active");
        keys.learn(std::slice::from_ref(&row)).unwrap();
        (keys, row.id)
    }

    #[test]
    fn sealed_values_open_in_their_own_record_and_field_only() {
        let (keys, id) = keys();
        let plain = spec();
        let stored = keys.seal(&id, "wh_1", &plain).unwrap();
        for secret in ["t0ken", "k3y", plain.secret.expose()] {
            assert!(!stored.contains(secret), "{stored}");
        }
        assert!(stored.contains("acme"), "other values stay plain: {stored}");
        let mut read: WebhookSpec = serde_json::from_str(&stored).unwrap();
        keys.open("wh_1", &mut read).unwrap();
        assert_eq!(read, plain);

        let mut elsewhere: WebhookSpec = serde_json::from_str(&stored).unwrap();
        let err = keys.open("wh_2", &mut elsewhere).unwrap_err();
        assert!(matches!(err, SecretsError::BadValue { .. }), "{err}");
        // The sealed token moved into the API-key header does not open either.
        let mut moved: WebhookSpec = serde_json::from_str(&stored).unwrap();
        let AuthConfig::Bearer { token } = &moved.auth else {
            panic!()
        };
        let token = token.clone();
        moved.headers.insert("X-Api-Key".into(), Some(token));
        let err = keys.open("wh_1", &mut moved).unwrap_err();
        assert_eq!(
            err,
            SecretsError::BadValue {
                record: "wh_1".into(),
                field: "headers.X-Api-Key".into()
            }
        );
    }

    #[test]
    fn each_seal_draws_a_new_nonce() {
        let (keys, id) = keys();
        let plain = spec();
        assert_ne!(
            keys.seal(&id, "wh_1", &plain).unwrap(),
            keys.seal(&id, "wh_1", &plain).unwrap()
        );
    }

    #[test]
    fn data_keys_open_only_with_their_master_key() {
        let (keys, _) = keys();
        let row = keys.new_data_key("active");
        let other = Keys::ephemeral();
        let err = other.learn(std::slice::from_ref(&row)).unwrap_err();
        assert!(matches!(err, SecretsError::UnknownMaster { .. }), "{err}");
        assert!(err.to_string().starts_with("secrets_key:"), "{err}");
        // A row claiming the right master but altered does not open.
        let mut altered = row.clone();
        altered.id = "dk_0000000000000000".into();
        let err = keys.learn(&[altered]).unwrap_err();
        assert!(matches!(err, SecretsError::BadMaster { .. }), "{err}");
        keys.learn(&[row]).unwrap();
    }

    #[test]
    fn master_keys_parse_any_base64_of_32_bytes_and_name_what_is_wrong() {
        let text = MasterKey::generate_text();
        let key = MasterKey::parse(&format!(" {text}\n")).unwrap();
        assert!(
            key.id().starts_with("mk_") && key.id().len() == 15,
            "{}",
            key.id()
        );
        assert_eq!(
            MasterKey::parse(text.trim_end_matches('=')).unwrap().id(),
            key.id()
        );
        assert!(MasterKey::parse("c2hvcnQ=")
            .unwrap_err()
            .contains("this one is 5 bytes"));
        assert!(MasterKey::parse("***")
            .unwrap_err()
            .contains("must be base64"));
        assert!(!format!("{key:?}").contains(&text));
    }
}
