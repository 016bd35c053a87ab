-- Runs may belong to one agent of their organisation: a worker (whose token names its agent) sees,
-- claims and finishes only its own agent's runs. Runs without an agent are for internal workers
-- (the operator token) only.

ALTER TABLE runs ADD COLUMN agent_id uuid;

-- A worker's claim: its agent's pending runs in the claim order.
CREATE INDEX runs_claim_order_by_agent ON runs (agent_id, (lane = 'auth') DESC, priority DESC, created_at, id)
    WHERE status = 'pending' AND agent_id IS NOT NULL;

-- The one-active-run rules hold per agent (runs without an agent form their own group): one
-- agent's subject or idempotency key neither blocks nor reveals another agent's run.
DROP INDEX runs_one_active_sync_per_subject;
DROP INDEX runs_one_active_per_idempotency_key;
CREATE UNIQUE INDEX runs_one_active_sync_per_subject
    ON runs (organization_id, coalesce(agent_id, '00000000-0000-0000-0000-000000000000'::uuid), subject_id)
    WHERE lane = 'sync' AND status IN ('pending', 'running');
CREATE UNIQUE INDEX runs_one_active_per_idempotency_key
    ON runs (organization_id, coalesce(agent_id, '00000000-0000-0000-0000-000000000000'::uuid), idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('pending', 'running');
