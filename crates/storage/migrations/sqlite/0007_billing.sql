-- Plans and limits, Stripe billing state, invoices kept for tax law, email verification and password reset
-- links, known devices for login notices, and the public contact form (SQLite). Paired with
-- postgres/0007_billing.sql.

-- Plans are operator data (`mtdesk admin plan …`): limits are enforced where the work happens. A limit of
-- -1 means unlimited. Exactly one plan has is_default = 1: the plan of every account without a paid
-- subscription while Stripe is configured. Without Stripe (self-hosting) every account is on the plan
-- named by MTDESK_DEFAULT_PLAN, 'unlimited' unless the operator sets another.
CREATE TABLE plans (
    id                  TEXT PRIMARY KEY,       -- slug: free, starter, pro
    name                TEXT NOT NULL,
    stripe_price_id     TEXT,                   -- NULL: not purchasable (the free plan)
    price_cents         INTEGER NOT NULL DEFAULT 0,
    currency            TEXT NOT NULL DEFAULT 'usd',
    max_chatbots        INTEGER NOT NULL,
    max_messages_month  INTEGER NOT NULL,       -- answered messages per calendar month (UTC)
    max_storage_bytes   INTEGER NOT NULL,       -- knowledge: uploaded files and crawled text
    max_channels        INTEGER NOT NULL,
    is_default          INTEGER NOT NULL DEFAULT 0,
    position            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX plans_stripe_price_key ON plans (stripe_price_id);

INSERT INTO plans (id, name, stripe_price_id, price_cents, currency, max_chatbots, max_messages_month,
                   max_storage_bytes, max_channels, is_default, position, created_at, updated_at)
VALUES ('free', 'Free', NULL, 0, 'usd', 1, 100, 10485760, 1, 1, 0, 0, 0),
       ('starter', 'Starter', 'price_starter', 1900, 'usd', 3, 2000, 104857600, 3, 0, 1, 0, 0),
       ('pro', 'Pro', 'price_pro', 9900, 'usd', 20, 20000, 1073741824, 20, 0, 2, 0, 0),
       ('unlimited', 'Unlimited', NULL, 0, 'usd', -1, -1, -1, -1, 0, 3, 0, 0);

-- Billing state on the account. plan_id NULL = the default plan. billing_status: none, active, trialing,
-- past_due (grace period until grace_until), unpaid, canceled.
ALTER TABLE accounts ADD COLUMN plan_id TEXT;
ALTER TABLE accounts ADD COLUMN billing_status TEXT NOT NULL DEFAULT 'none';
ALTER TABLE accounts ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE accounts ADD COLUMN stripe_subscription_id TEXT;
ALTER TABLE accounts ADD COLUMN grace_until INTEGER;
ALTER TABLE accounts ADD COLUMN billing_updated_at INTEGER;
-- The month ('2026-12') for which the owner was told the message limit was reached (told once).
ALTER TABLE accounts ADD COLUMN limit_notice_month TEXT;
-- Email verification: NULL until the link from the verification mail is opened. Accounts that existed
-- before verification was introduced count as verified.
ALTER TABLE accounts ADD COLUMN email_verified_at INTEGER;
UPDATE accounts SET email_verified_at = created_at;
CREATE UNIQUE INDEX accounts_stripe_customer_key ON accounts (stripe_customer_id);

-- Stripe webhook events already processed (deduplication on event.id); ids only, pruned after 30 days.
CREATE TABLE stripe_events (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    received_at     INTEGER NOT NULL
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);

-- Invoices, kept for tax law. On account deletion account_id is set to NULL and only what the law needs
-- stays (number, amount, currency, date, billing name and country).
CREATE TABLE invoices (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT,
    stripe_invoice_id   TEXT NOT NULL,
    number              TEXT,
    status              TEXT NOT NULL,          -- paid, open, uncollectible, void
    amount_cents        INTEGER NOT NULL,
    currency            TEXT NOT NULL,
    billing_name        TEXT,
    billing_country     TEXT,
    hosted_url          TEXT,                   -- cleared on account deletion
    issued_at           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);
CREATE UNIQUE INDEX invoices_stripe_key ON invoices (stripe_invoice_id);
CREATE INDEX invoices_account_idx ON invoices (account_id, issued_at);

-- Single-use links sent by email: email verification (24 h), password reset (1 h), undo of an email change
-- (to the old address, 7 days). Only the SHA-256 of the secret is stored.
CREATE TABLE email_links (
    id_hash         TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose         TEXT NOT NULL,              -- verify, reset, undo_email
    data            TEXT,                       -- undo_email: the previous address
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX email_links_account_idx ON email_links (account_id, purpose, created_at);

-- Devices an account has signed in from (keyed hash of the user agent), for "new sign-in" notices.
CREATE TABLE known_devices (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_hash     TEXT NOT NULL,
    label           TEXT NOT NULL,              -- "Firefox on Linux": shown in the notice and My Account
    first_seen_at   INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX known_devices_key ON known_devices (account_id, device_hash);

-- Messages from the public contact page, for the operator; purged after 12 months.
CREATE TABLE contact_messages (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    email           TEXT NOT NULL,
    topic           TEXT NOT NULL,              -- support, billing, privacy
    message         TEXT NOT NULL,
    ip_hash         TEXT NOT NULL,              -- keyed hash, for rate limiting only
    privacy_request_id TEXT,                    -- the draft deletion request a privacy message created
    created_at      INTEGER NOT NULL
);
CREATE INDEX contact_messages_created_idx ON contact_messages (created_at);
CREATE INDEX contact_messages_ip_idx ON contact_messages (ip_hash, created_at);
