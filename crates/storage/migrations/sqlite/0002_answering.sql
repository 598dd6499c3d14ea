-- AI answering (SQLite): per-chatbot generation settings, per-account provider keys (sealed), conversations,
-- messages and one record per answer. Paired with postgres/0002_answering.sql.

ALTER TABLE chatbots ADD COLUMN max_tokens INTEGER NOT NULL DEFAULT 512;
-- Ordered fallbacks after the main provider, one "provider model" per line; offline is always last.
ALTER TABLE chatbots ADD COLUMN fallback_chain TEXT NOT NULL DEFAULT '';

-- Bring-your-own-key: the API key sealed with AES-256-GCM (see storage::sealed), never stored in clear.
CREATE TABLE provider_keys (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    sealed_key      TEXT NOT NULL,
    hint            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX provider_keys_account_provider_key ON provider_keys (account_id, provider);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX conversations_chatbot_idx ON conversations (chatbot_id, updated_at);
CREATE INDEX conversations_account_idx ON conversations (account_id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at);
CREATE INDEX messages_account_idx ON messages (account_id);

-- One row per answer: how it was produced, for analytics, plan limits and the unanswered list.
CREATE TABLE answers (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    question        TEXT NOT NULL,
    answer          TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL,
    latency_ms      INTEGER NOT NULL,
    prompt_tokens   INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    from_knowledge  INTEGER NOT NULL,
    answered        INTEGER NOT NULL,
    top_score       REAL,
    retrieval       TEXT NOT NULL,
    fallbacks       TEXT NOT NULL,
    resolved_at     INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX answers_chatbot_idx ON answers (chatbot_id, created_at);
CREATE INDEX answers_account_month_idx ON answers (account_id, created_at);
