-- Secrets, provider credentials, egress policies, the failed-lookup throttle and the audit trail.
-- Values are stored only sealed (AES-256-GCM, nonce + ciphertext, bound to their row by associated
-- data) with the id of the key that sealed them; placeholders only as SHA-256 hashes.

CREATE TABLE secretproxy.secrets (
    id               uuid PRIMARY KEY,
    -- NULL only for legacy secrets made before secrets belonged to an organisation: such a
    -- placeholder is refused whenever an organisation is expected, i.e. always.
    organization_id  uuid,
    -- NULL: usable by every agent of the organisation; else by this agent only.
    agent_id         uuid,
    name             text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    placeholder_hash bytea NOT NULL UNIQUE CHECK (octet_length(placeholder_hash) = 32),
    key_id           text NOT NULL,
    sealed_value     bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    rotated_at       timestamptz NOT NULL DEFAULT now()
);

-- One name per organisation and scope (organisation-wide, or one agent). NULL agent ids must
-- collide with each other, hence the coalesce (portable to servers without NULLS NOT DISTINCT).
CREATE UNIQUE INDEX secrets_name_per_scope
    ON secretproxy.secrets (organization_id, coalesce(agent_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
CREATE INDEX secrets_by_organization ON secretproxy.secrets (organization_id, name, id);

CREATE TABLE secretproxy.provider_credentials (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    provider        text NOT NULL CHECK (provider ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    priority        integer NOT NULL CHECK (priority BETWEEN -1000 AND 1000),
    key_id          text NOT NULL,
    sealed_value    bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The best credential of an organisation for a provider is the first row of this index.
CREATE INDEX provider_credentials_best
    ON secretproxy.provider_credentials (organization_id, provider, priority DESC, created_at DESC, id DESC);

CREATE TABLE secretproxy.egress_policies (
    organization_id uuid PRIMARY KEY,
    rules           jsonb NOT NULL CHECK (jsonb_typeof(rules) = 'array'),
    policy_hash     text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Failed placeholder lookups per source in fixed windows, shared by every replica.
CREATE TABLE secretproxy.failed_lookups (
    source            text PRIMARY KEY,
    window_started_at timestamptz NOT NULL,
    failures          integer NOT NULL CHECK (failures > 0)
);

CREATE TABLE secretproxy.audit_records (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    organization_id uuid,
    agent_id        uuid,
    upstream        text NOT NULL,
    method          text NOT NULL,
    -- The path without its query string (which could carry anything a worker put there).
    path            text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('allowed', 'denied')),
    reason          text NOT NULL,
    status_code     integer,
    request_bytes   bigint NOT NULL DEFAULT 0,
    response_bytes  bigint NOT NULL DEFAULT 0,
    duration_ms     double precision NOT NULL,
    -- The ids (never values or placeholders) of the secrets and credential that were injected.
    secret_ids      uuid[] NOT NULL DEFAULT '{}',
    credential_id   uuid
);

CREATE INDEX audit_records_by_time ON secretproxy.audit_records (recorded_at);
CREATE INDEX audit_records_by_organization ON secretproxy.audit_records (organization_id, recorded_at);
