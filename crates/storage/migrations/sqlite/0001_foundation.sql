-- Foundation: accounts, sessions, API tokens, chatbots, Q&A pairs (SQLite).
-- Paired with postgres/0001_foundation.sql: same tables, same columns, same meaning.
-- Timestamps are integer unix milliseconds; ids are UUID text; booleans are 0/1 integers.

CREATE TABLE accounts (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    name            TEXT NOT NULL,
    company         TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    age_confirmed_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_email_normalized_key ON accounts (email_normalized);

CREATE TABLE sessions (
    id_hash         TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX sessions_account_id_idx ON sessions (account_id);

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    token_hash      TEXT NOT NULL,
    prefix          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
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
    temperature     REAL NOT NULL,
    fallback_reply  TEXT NOT NULL,
    knowledge_only  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX chatbots_account_id_idx ON chatbots (account_id, created_at);

CREATE TABLE qa_pairs (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id) ON DELETE CASCADE,
    question        TEXT NOT NULL,
    answer          TEXT NOT NULL,
    -- Order within the chatbot (insertion order, CSV row order for imports).
    position        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX qa_pairs_chatbot_id_idx ON qa_pairs (chatbot_id, position);
CREATE INDEX qa_pairs_account_id_idx ON qa_pairs (account_id);

-- Full-text index over Q&A pairs, kept in step by triggers inside the same transaction as the row.
-- It carries account_id (so the deletion test can see whose entries it holds) and chatbot_id (so a
-- search filters inside the full-text match instead of probing the index once per row).
CREATE VIRTUAL TABLE qa_pairs_fts USING fts5 (
    question, answer, account_id UNINDEXED, chatbot_id UNINDEXED,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER qa_pairs_fts_insert AFTER INSERT ON qa_pairs BEGIN
    INSERT INTO qa_pairs_fts (rowid, question, answer, account_id, chatbot_id)
    VALUES (new.rowid, new.question, new.answer, new.account_id, new.chatbot_id);
END;
CREATE TRIGGER qa_pairs_fts_update AFTER UPDATE ON qa_pairs BEGIN
    DELETE FROM qa_pairs_fts WHERE rowid = old.rowid;
    INSERT INTO qa_pairs_fts (rowid, question, answer, account_id, chatbot_id)
    VALUES (new.rowid, new.question, new.answer, new.account_id, new.chatbot_id);
END;
CREATE TRIGGER qa_pairs_fts_delete AFTER DELETE ON qa_pairs BEGIN
    DELETE FROM qa_pairs_fts WHERE rowid = old.rowid;
END;
