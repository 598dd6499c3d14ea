-- Meta channels (SQLite): connected Pages / Instagram accounts / WhatsApp numbers, the raw webhook queue,
-- and the channel side of conversations and messages. Paired with postgres/0004_channels.sql.

-- One connected channel. `external_id` is what webhooks are routed by (external-apis.md §2.1, §3.1,
-- §4.1): the Page id, the Instagram professional account id, the WhatsApp phone number id. One platform
-- account can be connected once across the whole instance.
CREATE TABLE channels (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    chatbot_id      TEXT NOT NULL REFERENCES chatbots (id),
    kind            TEXT NOT NULL,              -- messenger, instagram, whatsapp
    external_id     TEXT NOT NULL,
    page_id         TEXT,                       -- the Page whose token sends (Messenger, Instagram via a Page)
    waba_id         TEXT,                       -- WhatsApp Business Account
    name            TEXT NOT NULL,              -- Page name, Instagram username, display phone number
    sealed_token    TEXT NOT NULL,              -- AES-256-GCM, see storage::sealed; never returned
    meta_user_id    TEXT,                       -- the Facebook user who granted access (deauthorize callback)
    status          TEXT NOT NULL,              -- connected, needs_reconnect
    paused          INTEGER NOT NULL DEFAULT 0,
    show_sources    INTEGER NOT NULL DEFAULT 0, -- append a "Source:" line to knowledge answers
    last_event_at   INTEGER,
    last_reply_at   INTEGER,
    last_error      TEXT,
    last_error_at   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX channels_kind_external_key ON channels (kind, external_id);
CREATE INDEX channels_account_idx ON channels (account_id);
CREATE INDEX channels_meta_user_idx ON channels (meta_user_id);

-- Raw webhook bodies, committed before Meta gets its 200 and deleted once processed (seconds later). Not
-- an account's table: the owner is known only after routing.
CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,
    body            BLOB NOT NULL,
    received_at     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE INDEX webhook_events_claim_idx ON webhook_events (locked_until, received_at);

-- A channel conversation is one end user of one channel.
ALTER TABLE conversations ADD COLUMN channel_id TEXT REFERENCES channels (id) ON DELETE CASCADE;
ALTER TABLE conversations ADD COLUMN contact_id TEXT;        -- PSID / IGSID / BSUID or wa_id
ALTER TABLE conversations ADD COLUMN contact_name TEXT;
ALTER TABLE conversations ADD COLUMN contact_phone TEXT;
ALTER TABLE conversations ADD COLUMN mode TEXT NOT NULL DEFAULT 'bot';   -- bot, human (taken over)
ALTER TABLE conversations ADD COLUMN last_inbound_at INTEGER;           -- the 24-hour window's start
ALTER TABLE conversations ADD COLUMN last_message TEXT;
ALTER TABLE conversations ADD COLUMN pending_action TEXT;           -- e.g. delete:en while the end user is asked to confirm deletion
ALTER TABLE conversations ADD COLUMN touched_at INTEGER;                -- any change, delivery states included (live inbox)
CREATE UNIQUE INDEX conversations_channel_contact_key ON conversations (channel_id, contact_id);

ALTER TABLE messages ADD COLUMN channel_id TEXT REFERENCES channels (id) ON DELETE CASCADE;
ALTER TABLE messages ADD COLUMN platform_message_id TEXT;   -- mid / wamid: the dedupe key
ALTER TABLE messages ADD COLUMN reply_to TEXT;               -- the inbound message a reply answers
ALTER TABLE messages ADD COLUMN delivery TEXT;               -- pending, sent, delivered, read, failed, not_sent
ALTER TABLE messages ADD COLUMN note TEXT;                   -- why it was not sent, delivery errors
ALTER TABLE messages ADD COLUMN attachments TEXT;            -- JSON metadata (type, url / media id, caption)
ALTER TABLE messages ADD COLUMN sources TEXT;                -- JSON: the knowledge an answer used
CREATE UNIQUE INDEX messages_platform_key ON messages (channel_id, platform_message_id);
-- One reply per inbound message, whatever the workers do.
CREATE UNIQUE INDEX messages_reply_to_key ON messages (reply_to);
