-- Event streams: ordered, gapless, resumable. The events table is the source of truth;
-- LISTEN/NOTIFY only wakes subscribers up.

-- One row per stream: its sequence counter. Publishing takes this row's lock (an upsert), so
-- publishers of one stream take turns until they commit: sequences are gapless, and a later
-- sequence is never visible before an earlier one.
CREATE TABLE streams (
    organization_id uuid NOT NULL,
    name text NOT NULL,
    last_sequence bigint NOT NULL CHECK (last_sequence >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, name)
);

CREATE TABLE events (
    organization_id uuid NOT NULL,
    stream text NOT NULL,
    sequence bigint NOT NULL CHECK (sequence >= 1),
    type text NOT NULL,
    payload_json text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, stream, sequence),
    FOREIGN KEY (organization_id, stream) REFERENCES streams (organization_id, name) ON DELETE CASCADE
);

-- Retention by age walks this index instead of the whole table.
CREATE INDEX events_by_age ON events (created_at);
