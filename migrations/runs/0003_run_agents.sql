-- Runs may belong to one agent of their organisation: a worker (whose token names its agent) sees,
-- claims and finishes only its own agent's runs. Runs without an agent are for internal workers
-- (the operator token) only.

ALTER TABLE runs ADD COLUMN agent_id uuid;

-- A worker's claim: its agent's pending runs in the claim order.
CREATE INDEX runs_claim_order_by_agent ON runs (agent_id, (lane = 'auth') DESC, priority DESC, created_at, id)
    WHERE status = 'pending' AND agent_id IS NOT NULL;
