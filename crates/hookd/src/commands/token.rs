//! `hookd token create`: a new admin API token, written straight to the database.

use anyhow::Context as _;

use super::{load_config, open_store};
use crate::cli::ConfigArgs;

/// Creates a token named `name` and prints it alone on standard output (it is stored hashed and
/// cannot be shown again).
pub async fn create(name: &str, args: &ConfigArgs) -> anyhow::Result<()> {
    let config = load_config(args, None)?;
    let store = open_store(&config).await?;
    let token = hookd_server::create_token(store.as_ref(), name)
        .await
        .with_context(|| format!("creating the token `{name}`"))?;
    eprintln!(
        "Admin token `{name}` created in {} (shown once):",
        config.database_url
    );
    say!("{token}")?;
    Ok(())
}
