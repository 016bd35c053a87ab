-- Chat connections (credentials sealed with AES-256-GCM) and pending questions.

CREATE TABLE connections (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    platform text NOT NULL CHECK (platform IN ('slack', 'telegram')),
    -- Slack team id / Telegram bot id: how webhooks find their connection, so one per platform.
    external_id text NOT NULL,
    api_base_url text NOT NULL,
    -- The key that sealed the credentials, and nonce + ciphertext of their JSON. Never returned.
    key_id text NOT NULL,
    credentials bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connections_external_key UNIQUE (platform, external_id)
);
CREATE INDEX connections_listing ON connections (organization_id, created_at, id);

CREATE TABLE pending_questions (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    connection_id uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    agent_id uuid NOT NULL,
    expected_user_id text NOT NULL,
    channel_id text NOT NULL,
    -- The platform's reference to the posted card (Slack channel + ts, Telegram chat + message
    -- id): in the row, so that whichever replica handles the click can edit the card.
    message_channel_id text,
    message_id text,
    question_text text NOT NULL DEFAULT '',
    options_json text NOT NULL DEFAULT '[]',
    payload_json text NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    claimed_at timestamptz,
    answered_option_id text,
    answered_at timestamptz
);
-- The sweep walks the oldest rows first.
CREATE INDEX pending_questions_by_age ON pending_questions (created_at);
