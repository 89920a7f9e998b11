//! The master keys that seal stored secrets: where a process finds them (`secrets_key`,
//! `secrets_key_file`, or on SQLite a key file made beside the database on first start), and
//! `hookd secrets generate-key` and `hookd secrets rotate-key`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use hookd_core::store::StoreError;
use hookd_store_sql::secrets::{Keys, MasterKey, SecretsError};

use super::{load_config, open_store};
use crate::cli::ConfigArgs;
use crate::config::Config;

/// The configured keys, and the key file this start made (there was none), if it did.
pub(super) struct Loaded {
    pub keys: Keys,
    pub generated: Option<PathBuf>,
}

/// The keys `config` names. With neither `secrets_key` nor `secrets_key_file` on a SQLite file,
/// the key is in `<database file>.key`, made (mode 0600) when missing.
pub(super) fn keys(config: &Config) -> anyhow::Result<Loaded> {
    let s = &config.secrets;
    let old = s
        .old_keys
        .iter()
        .map(|k| MasterKey::parse(k).map_err(|e| anyhow!("secrets_old_keys: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (key, generated) = match (&s.key, &s.key_file) {
        (Some(key), _) => (
            MasterKey::parse(key).map_err(|e| anyhow!("secrets_key: {e}"))?,
            None,
        ),
        (None, Some(file)) => (read_key_file(file, "secrets_key_file")?, None),
        (None, None) => match config.database_url.sqlite_file() {
            Some(db) => {
                let file = default_key_file(&db);
                if file.exists() {
                    (read_key_file(&file, "the secrets key file")?, None)
                } else {
                    (make_key_file(&file)?, Some(file))
                }
            }
            // The configuration refuses a SQLite URL without a file, so this is PostgreSQL.
            None => anyhow::bail!("secrets_key: required with a PostgreSQL database_url"),
        },
    };
    Ok(Loaded {
        keys: Keys::new(key, old),
        generated,
    })
}

/// Where the key of a SQLite file is kept when no key is configured: `hookd.db.key` beside
/// `hookd.db`.
pub fn default_key_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

fn read_key_file(path: &Path, what: &str) -> anyhow::Result<MasterKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: cannot read {}", path.display()))?;
    MasterKey::parse(&text).map_err(|e| anyhow!("{what}: {}: {e}", path.display()))
}

/// Writes a new key to `path` only if no file is there: the key goes to a file of this
/// process's own first, which is then linked to `path` (so two processes starting together on
/// a new database agree on one key).
fn make_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text = MasterKey::generate_text();
    let temp = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    let written = write_private(&temp, &text);
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            tracing::warn!(
                file = %path.display(),
                "made a new secrets key file: it seals the signing secrets and credentials \
                 stored in the database. Back it up, and keep it apart from the database's backups"
            );
            MasterKey::parse(&text).map_err(|e| anyhow!("{e}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key_file(path, "the secrets key file")
        }
        Err(e) => Err(anyhow!(e)).with_context(|| {
            format!(
                "cannot make the secrets key file {} (set secrets_key or secrets_key_file)",
                path.display()
            )
        }),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

/// `e`, said plainly when the secrets do not open: a key file made by this start is removed
/// again (it seals nothing) and the message says the old one is missing.
pub(super) fn explain(e: anyhow::Error, generated: Option<&Path>) -> anyhow::Error {
    let sealed_elsewhere = e
        .chain()
        .any(|cause| match cause.downcast_ref::<StoreError>() {
            Some(StoreError::Backend(inner)) => inner.downcast_ref::<SecretsError>().is_some(),
            _ => false,
        });
    match generated {
        Some(file) if sealed_elsewhere => {
            let _ = std::fs::remove_file(file);
            e.context(format!(
                "the secrets key file {} is missing, and the database's secrets were sealed \
                 with a key hookd no longer has: restore that file from your backup, or set \
                 secrets_key to the key",
                file.display()
            ))
        }
        _ => e,
    }
}

/// `hookd secrets generate-key`: a new master key on standard output.
pub fn generate_key() -> anyhow::Result<()> {
    say!("{}", MasterKey::generate_text())?;
    Ok(())
}

/// `hookd secrets rotate-key`.
pub async fn rotate_key(args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load_config(args, None)?;
    let store = open_store(&config).await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let done = store
        .rotate_secrets_key(now_ms)
        .await
        .context("rotating the secrets key (nothing was changed; run it again)")?;
    eprintln!(
        "Every stored secret is sealed with data key {} (under master key {}); {} records \
         resealed, {} old data keys deleted.",
        done.key_id, done.master_key_id, done.resealed, done.retired
    );
    if !config.secrets.old_keys.is_empty() {
        eprintln!("No secret needs secrets_old_keys now: remove them from the configuration.");
    }
    Ok(())
}
