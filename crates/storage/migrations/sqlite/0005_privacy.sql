-- Privacy (SQLite): deletion receipts and Meta data-deletion requests. Paired with postgres/0005_privacy.sql.
-- Neither holds personal data: subjects are stored as keyed hashes, so the operator can prove what was
-- deleted, when and why, without keeping who.

CREATE TABLE deletion_receipts (
    id              TEXT PRIMARY KEY,
    scope           TEXT NOT NULL,              -- account, channel, meta_user, end_user, source
    path            TEXT NOT NULL,              -- dashboard, api, meta_deauthorize, meta_data_deletion, operator, retention
    subject_hash    TEXT NOT NULL,              -- HMAC-SHA256(instance key, scope:id), hex
    counts          TEXT NOT NULL,              -- JSON object: category → rows deleted
    kept            TEXT,                       -- what was kept and the legal reason (e.g. billing records)
    created_at      INTEGER NOT NULL,
    completed_at    INTEGER
);
CREATE INDEX deletion_receipts_subject_idx ON deletion_receipts (subject_hash);

-- Meta's data-deletion callback (external-apis.md §6.3): one row per request, its public status page.
CREATE TABLE data_deletion_requests (
    confirmation_code TEXT PRIMARY KEY,
    subject_hash    TEXT NOT NULL,
    subject         TEXT,                       -- the Meta user id while the deletion runs (to resume after a crash); cleared when completed
    status          TEXT NOT NULL,              -- received, in_progress, completed
    receipt_id      TEXT,
    received_at     INTEGER NOT NULL,
    completed_at    INTEGER
);

-- Retention: messages (and answer records) older than this many days are purged daily; NULL = 365 (the
-- policy's 12 months). An account may only shorten it.
ALTER TABLE accounts ADD COLUMN retention_days INTEGER;
CREATE INDEX messages_created_idx ON messages (created_at);
CREATE INDEX answers_created_idx ON answers (created_at);
