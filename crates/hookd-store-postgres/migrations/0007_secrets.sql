-- Secrets at rest: the data keys that seal the secrets inside webhook and inbound-hook specs,
-- each sealed by a master key from configuration (`master_key_id` names it). Writes seal with
-- the one `active` key; a key rotation marks it `retiring`, adds a new active one, reseals every
-- value and deletes the retiring keys. Existing plain specs are sealed when the store migrates.
CREATE TABLE secret_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    master_key_id TEXT    NOT NULL,
    sealed        TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('active', 'retiring')),
    created_at    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX secret_keys_one_active ON secret_keys (state) WHERE state = 'active';
