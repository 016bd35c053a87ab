-- Worker runs. The state machine lives here: statuses and lanes as CHECKs, the columns each
-- status requires as CHECKs, and transitions as guarded UPDATE … WHERE status = … in store.py.

CREATE TABLE runs (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    lane text NOT NULL CHECK (lane IN ('sync', 'action', 'embed_backfill', 'auth', 'watcher')),
    subject_id text NOT NULL DEFAULT '',
    payload_json text NOT NULL DEFAULT '{}',
    priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'timeout')),
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    idempotency_key text,
    run_after timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    claimed_at timestamptz,
    last_heartbeat_at timestamptz,
    -- How many heartbeats the current claim sent: the watcher lane reaps a claim that never sent
    -- one on a longer threshold than one that went silent.
    heartbeats integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    result_json text,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT runs_final_iff_finished CHECK ((status IN ('pending', 'running')) = (finished_at IS NULL)),
    CONSTRAINT runs_running_is_claimed CHECK (
        status <> 'running' OR (claimed_by IS NOT NULL AND claimed_at IS NOT NULL AND last_heartbeat_at IS NOT NULL)
    ),
    CONSTRAINT runs_sync_has_subject CHECK (lane <> 'sync' OR subject_id <> '')
);

-- At most one active sync run per subject (of an organisation).
CREATE UNIQUE INDEX runs_one_active_sync_per_subject ON runs (organization_id, subject_id)
    WHERE lane = 'sync' AND status IN ('pending', 'running');

-- An idempotency key names at most one active run per organisation.
CREATE UNIQUE INDEX runs_one_active_per_idempotency_key ON runs (organization_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('pending', 'running');

-- ClaimRun's order among pending runs: auth lane first, then priority, then age.
CREATE INDEX runs_claim_order ON runs ((lane = 'auth') DESC, priority DESC, created_at, id)
    WHERE status = 'pending';

-- The reaper's sweep: exactly the reaped lanes' running runs, so its cost follows the runs in
-- flight, not the size of the table.
CREATE INDEX runs_reapable ON runs (last_heartbeat_at)
    WHERE status = 'running' AND lane IN ('sync', 'action', 'embed_backfill', 'auth');
CREATE INDEX runs_running_watchers ON runs (last_heartbeat_at) WHERE status = 'running' AND lane = 'watcher';

-- ListRuns: an organisation's runs, newest first.
CREATE INDEX runs_listing ON runs (organization_id, created_at DESC, id DESC);
