-- Email outbox, emailed deletion requests with their sub-processor checklist, data exports, consent and the
-- anonymized daily aggregates (PostgreSQL). Paired with sqlite/0006_outbox_requests.sql.

-- Durable email outbox: a mail is committed here before anything tries to send it; a delivery worker
-- sends it over SMTP with retries. A sent mail's row is deleted at once (no copy of addresses or bodies
-- is kept); only pending or failed mails are listed by `mtdesk admin outbox`.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    account_id      TEXT,                       -- the account the mail is about; NULL after its deletion or for operator mail
    kind            TEXT NOT NULL,              -- template name
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    status          TEXT NOT NULL,              -- pending, failed (gave up after the last attempt)
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);
CREATE INDEX outbox_account_idx ON outbox (account_id);

-- Deletion requests received by email (or the contact form), handled by the operator: acknowledged within
-- 2 business days, executed within 30 days, confirmed by email. The requester's address and name are kept
-- only until the confirmation is queued; afterwards the row holds the keyed hash only.
CREATE TABLE privacy_requests (
    id              TEXT PRIMARY KEY,
    email           TEXT,
    name            TEXT,
    subject_hash    TEXT NOT NULL,              -- HMAC(instance key, "email:<normalized address>")
    scope           TEXT NOT NULL,              -- all, meta, other
    description     TEXT,
    origin          TEXT NOT NULL,              -- email, contact_form
    status          TEXT NOT NULL,              -- draft, received, completed
    received_at     BIGINT NOT NULL,
    ack_due_at      BIGINT NOT NULL,
    acknowledged_at BIGINT,
    due_at          BIGINT NOT NULL,
    warned_at       BIGINT,
    executed_at     BIGINT,
    receipt_id      TEXT,
    summary         TEXT,                       -- what was deleted (counts), for the operator and the confirmation
    confirmed_at    BIGINT
);
CREATE INDEX privacy_requests_status_idx ON privacy_requests (status, due_at);

-- The policy's sub-processors, as data: what each does and how deletion reaches it.
CREATE TABLE subprocessors (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    location        TEXT NOT NULL,
    deletion        TEXT NOT NULL,              -- the deletion instruction shown to the operator
    automated       BIGINT NOT NULL,           -- 1: MT Desk does it through an API and records the result
    position        BIGINT NOT NULL
);
INSERT INTO subprocessors (id, name, purpose, location, deletion, automated, position) VALUES
 ('aws', 'Amazon Web Services', 'Hosting, storage and backups', 'EU / US', 'Confirm the account''s rows and files are gone from the primary database and data directory; backups expire by rotation within 35 days.', 0, 1),
 ('vercel', 'Vercel', 'Marketing site and edge delivery', 'US', 'No customer content is stored; check the request logs retention (30 days) and note it.', 0, 2),
 ('render', 'Render', 'Application hosting', 'EU / US', 'Confirm the service logs of the request period have rotated (30 days) or purge them in the dashboard.', 0, 3),
 ('mongodb_atlas', 'MongoDB Atlas', 'Legacy document storage', 'EU', 'Search the cluster for the subject''s email and account id and delete any match; note the count.', 0, 4),
 ('openrouter', 'OpenRouter', 'AI answers and embeddings', 'US', 'Prompts are not retained by default (zero-retention routing); if logging was enabled for the account, request deletion at privacy@openrouter.ai.', 0, 5),
 ('fireworks', 'Fireworks AI', 'AI answers', 'US', 'No retention of prompts on the serverless API; if an account key of the customer was used, the customer controls it. Note the check.', 0, 6),
 ('minimax', 'MiniMax', 'AI answers', 'SG', 'Request deletion of any API logs for the period through MiniMax support; note the ticket.', 0, 7),
 ('moonshot', 'Moonshot AI', 'AI answers', 'CN', 'Request deletion of any API logs for the period through Moonshot support; note the ticket.', 0, 8),
 ('stripe', 'Stripe', 'Payments and invoices', 'US / IE', 'The subscription is cancelled through the API at deletion; invoices are kept for tax law, the customer record is deleted where no invoice requires it.', 1, 9),
 ('email', 'Email provider (SMTP)', 'Transactional email', 'EU', 'MT Desk deletes each mail from its outbox once sent; ask the provider to purge delivery logs older than its retention if it keeps them.', 0, 10);

-- One checklist line per sub-processor for each executed request: done by MT Desk through an API
-- (recorded with its result) or ticked by the operator (who and when).
CREATE TABLE privacy_request_tasks (
    request_id      TEXT NOT NULL REFERENCES privacy_requests (id) ON DELETE CASCADE,
    processor_id    TEXT NOT NULL,
    status          TEXT NOT NULL,              -- open, done, not_applicable
    done_by         TEXT,
    done_at         BIGINT,
    note            TEXT,
    PRIMARY KEY (request_id, processor_id)
);

-- "Download my data": a background job writes a ZIP under the account's data directory; the link is valid
-- 24 hours (only the token's hash is kept), then the file and the row go.
CREATE TABLE exports (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,              -- pending, running, ready, failed
    token_hash      TEXT NOT NULL,
    size_bytes      BIGINT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    ready_at        BIGINT,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX exports_account_idx ON exports (account_id);
CREATE INDEX exports_status_idx ON exports (status, expires_at);

-- Consent to product-usage analytics: NULL = not asked (nothing collected), 0 = declined, 1 = accepted.
ALTER TABLE accounts ADD COLUMN analytics_consent BIGINT;
ALTER TABLE accounts ADD COLUMN analytics_consent_at BIGINT;

-- Product-usage events, recorded only while the account's consent is 1 and deleted when it is withdrawn.
CREATE TABLE usage_events (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX usage_events_account_idx ON usage_events (account_id, created_at);

-- Anonymized daily aggregates: counts per chatbot, channel, provider and day. They hold no message text and
-- no end-user id, survive the retention purge, and on account deletion lose their account and chatbot ids
-- (the numbers stay, so totals stay right). Latency is kept as a histogram (bucket upper bounds in ms:
-- 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, above) for medians and p95 without the raw rows.
CREATE TABLE daily_stats (
    id              TEXT PRIMARY KEY,
    account_id      TEXT,
    chatbot_id      TEXT,
    channel         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    day             BIGINT NOT NULL,           -- days since 1970-01-01 (UTC)
    conversations   BIGINT NOT NULL DEFAULT 0,
    messages_in     BIGINT NOT NULL DEFAULT 0,
    messages_out    BIGINT NOT NULL DEFAULT 0,
    answered        BIGINT NOT NULL DEFAULT 0,
    from_knowledge  BIGINT NOT NULL DEFAULT 0,
    fallbacks       BIGINT NOT NULL DEFAULT 0,
    prompt_tokens   BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    latency_ms_sum  BIGINT NOT NULL DEFAULT 0,
    lat_50 BIGINT NOT NULL DEFAULT 0, lat_100 BIGINT NOT NULL DEFAULT 0, lat_200 BIGINT NOT NULL DEFAULT 0,
    lat_400 BIGINT NOT NULL DEFAULT 0, lat_800 BIGINT NOT NULL DEFAULT 0, lat_1600 BIGINT NOT NULL DEFAULT 0,
    lat_3200 BIGINT NOT NULL DEFAULT 0, lat_6400 BIGINT NOT NULL DEFAULT 0, lat_12800 BIGINT NOT NULL DEFAULT 0,
    lat_max BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX daily_stats_key ON daily_stats (account_id, chatbot_id, channel, provider, day);
CREATE INDEX daily_stats_day_idx ON daily_stats (day);

-- Account deletion in batches: the account is marked first (nothing of it is served any more), its large
-- tables are deleted 10k rows per transaction, then the rest in one; a crash resumes from the mark.
ALTER TABLE accounts ADD COLUMN deleting_since BIGINT;
ALTER TABLE accounts ADD COLUMN deleting_path TEXT;

-- Operators (the privacy page, deletion requests): granted to an account by `mtdesk admin operator grant`,
-- never by anything a user can do in the product.
ALTER TABLE accounts ADD COLUMN operator_since BIGINT;
