-- Knowledge base (sqlite): sources (uploaded files, crawled sites), crawled pages, chunks with their vectors,
-- and the database job queue. Paired with the other backend's 0003_knowledge.sql.
--
-- Chunks and vectors live here and only here: the per-node BM25 index and vector matrix are derived from
-- these rows and rebuilt when chatbots.knowledge_version moves (every write that changes what a chatbot
-- can retrieve bumps it, in the same transaction), so a deletion is a row delete and nothing else.

-- Which embedder the chatbot's vectors come from: 'local' (MiniLM in process), 'openrouter:<model>', or
-- 'none' (lexical retrieval only). Changing it re-embeds every chunk.
ALTER TABLE chatbots ADD COLUMN embedding TEXT NOT NULL DEFAULT 'local';
ALTER TABLE chatbots ADD COLUMN knowledge_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sources (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,              -- 'file' or 'url'
    name            TEXT NOT NULL,              -- file name or URL as given
    doc_type        TEXT,                       -- detected from the content (files)
    byte_size       INTEGER NOT NULL DEFAULT 0,
    sha256          TEXT,
    status          TEXT NOT NULL,              -- queued, extracting, embedding, ready, failed
    error           TEXT,
    progress_done   INTEGER NOT NULL DEFAULT 0,
    progress_total  INTEGER NOT NULL DEFAULT 0,
    chunk_count     INTEGER NOT NULL DEFAULT 0,
    max_pages       INTEGER NOT NULL DEFAULT 0,
    max_depth       INTEGER NOT NULL DEFAULT 0,
    sync_schedule   TEXT NOT NULL DEFAULT 'manual', -- manual, daily, weekly
    next_sync_at    INTEGER,
    last_synced_at  INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX sources_chatbot_idx ON sources (chatbot_id, created_at);
CREATE INDEX sources_account_idx ON sources (account_id);
CREATE INDEX sources_sync_idx ON sources (next_sync_at);

-- One row per page a crawl met, with what happened to it.
CREATE TABLE source_pages (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    source_id       TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    status          TEXT NOT NULL,              -- ok, skipped, failed
    detail          TEXT,
    title           TEXT,
    content_hash    TEXT,
    fetched_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX source_pages_source_url_key ON source_pages (source_id, url);
CREATE INDEX source_pages_account_idx ON source_pages (account_id);

CREATE TABLE chunks (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id) ON DELETE CASCADE,
    source_id       TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    title           TEXT NOT NULL,
    heading         TEXT NOT NULL,
    url             TEXT,
    page            INTEGER,
    text            TEXT NOT NULL,
    text_hash       TEXT NOT NULL,
    embedding       BLOB,                      -- little-endian f32 × dims, unit length
    embed_model     TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX chunks_chatbot_idx ON chunks (chatbot_id, source_id, position);
CREATE INDEX chunks_source_idx ON chunks (source_id);
CREATE INDEX chunks_account_idx ON chunks (account_id);

-- The job queue. A job whose lease ran out (its worker died) is claimed again, so work resumes after a
-- crash; jobs write their results in one transaction, so a re-run never sees half of a previous run.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    account_id      TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT,
    source_id       TEXT,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,              -- queued, running, done, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 3,
    run_after       INTEGER NOT NULL,
    locked_until    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX jobs_claim_idx ON jobs (state, run_after);
CREATE INDEX jobs_account_idx ON jobs (account_id);
CREATE INDEX jobs_source_idx ON jobs (source_id);
