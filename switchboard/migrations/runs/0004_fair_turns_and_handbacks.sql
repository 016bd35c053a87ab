-- Fair claims between organisations, and runs handed back by a stopping worker.
--
-- Fairness is start-time fair queueing: every run gets a `turn` when it is enqueued, from its
-- organisation's own clock (organization_turns.last_turn): the next turn of that organisation,
-- but never earlier than the turn being served now (the head of the claim order; when nothing is
-- pending, the latest turn taken). An organisation that enqueues 10 000 runs at once takes 10 000
-- turns ahead of itself; another that enqueues 10 afterwards starts at the turn being served, so
-- its runs interleave one for one with the backlog instead of waiting behind it. An organisation
-- that was idle banks no credit (the turn being served moved on without it). Claims order by
-- (LANE_AUTH first, priority, turn, age): the claim stays one statement on one index; the price is
-- one upsert of a small row per enqueue.

ALTER TABLE runs ADD COLUMN turn bigint NOT NULL DEFAULT 0;

-- Hand-backs (WorkSession's `release`): the run is pending again at once and keeps its attempt
-- (the fencing token only ever grows), but a hand-back does not count against max_attempts: the
-- attempts used are `attempt - handbacks`.
ALTER TABLE runs ADD COLUMN handbacks integer NOT NULL DEFAULT 0 CHECK (handbacks >= 0);

CREATE TABLE organization_turns (
    organization_id uuid PRIMARY KEY,
    last_turn bigint NOT NULL
);
-- The latest turn taken, when nothing is pending (max(last_turn) from the index's end).
CREATE INDEX organization_turns_last ON organization_turns (last_turn);

DROP INDEX runs_claim_order;
CREATE INDEX runs_claim_order ON runs ((lane = 'auth') DESC, priority DESC, turn, created_at, id)
    WHERE status = 'pending';
DROP INDEX runs_claim_order_by_agent;
CREATE INDEX runs_claim_order_by_agent ON runs (agent_id, (lane = 'auth') DESC, priority DESC, turn, created_at, id)
    WHERE status = 'pending' AND agent_id IS NOT NULL;
