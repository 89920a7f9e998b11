//! SQL text for admin API tokens (only their SHA-256 hashes are stored).

/// The number of tokens, as `n`.
pub const COUNT: &str = "SELECT COUNT(*) AS n FROM api_tokens";
/// `$1` id, `$2` name, `$3` hash, `$4` created at.
pub const INSERT: &str =
    "INSERT INTO api_tokens (id, name, hash, created_at) VALUES ($1, $2, $3, $4)";
/// `$1`: hash; a row when a token has it.
pub const HASH_EXISTS: &str = "SELECT 1 FROM api_tokens WHERE hash = $1";
