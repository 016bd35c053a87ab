-- Users, organisations and memberships.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    -- Stored lower-cased and trimmed by the service: one account per address.
    email text NOT NULL CONSTRAINT users_email_key UNIQUE,
    display_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL CONSTRAINT organizations_slug_key UNIQUE,
    visibility text NOT NULL CHECK (visibility IN ('public', 'private')),
    -- Set on a user's personal organisation; unique, so a concurrent second SignUp cannot make a
    -- second one for the same user.
    personal_owner_id uuid CONSTRAINT organizations_personal_owner_key UNIQUE REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    -- Administrative metadata only: no authorization decision may read it.
    is_bot boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT memberships_pkey PRIMARY KEY (organization_id, user_id),
    CONSTRAINT memberships_bot_is_member CHECK (NOT is_bot OR role = 'member')
);

-- The one guard against a second support bot: at most one bot membership per organisation.
-- Whatever the service checks before inserting is only a fast path in front of this index.
CREATE UNIQUE INDEX memberships_one_bot_per_organization ON memberships (organization_id) WHERE is_bot;

-- ListMembers pages in (created_at, user_id) order.
CREATE INDEX memberships_listing ON memberships (organization_id, created_at, user_id);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE agents (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_listing ON agents (organization_id, created_at, id);

-- Every worker token issued, so that one can be revoked by its id and verifiers can learn of it.
CREATE TABLE worker_tokens (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- No foreign key: a token's record (and its revocation) must outlive its agent until it
    -- expires, or verifiers would forget a revocation and accept the token again.
    agent_id uuid NOT NULL,
    connection_id uuid,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
-- What verifiers poll: revoked tokens in revocation order; expired ones are of no interest.
CREATE INDEX worker_tokens_revoked ON worker_tokens (revoked_at, id) WHERE revoked_at IS NOT NULL;
