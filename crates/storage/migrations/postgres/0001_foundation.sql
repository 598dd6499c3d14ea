-- Foundation: accounts, sessions, API tokens, chatbots, Q&A pairs (PostgreSQL).
-- Paired with sqlite/0001_foundation.sql: same tables, same columns, same meaning.
-- Timestamps are BIGINT unix milliseconds; ids are UUID text; booleans are 0/1 BIGINTs, as on SQLite,
-- so the shared queries decode the same types on both.

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    name            TEXT NOT NULL,
    company         TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    age_confirmed_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_email_normalized_key ON accounts (email_normalized);

CREATE TABLE sessions (
    id_hash         TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX sessions_account_id_idx ON sessions (account_id);

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_account_id_idx ON api_tokens (account_id);

CREATE TABLE chatbots (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    instructions    TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    temperature     DOUBLE PRECISION NOT NULL,
    fallback_reply  TEXT NOT NULL,
    knowledge_only  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX chatbots_account_id_idx ON chatbots (account_id, created_at);

-- The tsvector is a generated column of the row itself, so the full-text entry disappears with the row.
CREATE TABLE qa_pairs (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id) ON DELETE CASCADE,
    question        TEXT NOT NULL,
    answer          TEXT NOT NULL,
    -- Order within the chatbot (insertion order, CSV row order for imports).
    position        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', question), 'A') || setweight(to_tsvector('english', answer), 'B')
    ) STORED
);
CREATE INDEX qa_pairs_chatbot_id_idx ON qa_pairs (chatbot_id, position);
CREATE INDEX qa_pairs_account_id_idx ON qa_pairs (account_id);
CREATE INDEX qa_pairs_search_idx ON qa_pairs USING GIN (search);
