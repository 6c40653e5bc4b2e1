-- 0002_invitations: the invitations this agent hosts (agent/src/postgres/invitations.rs):
-- code -> record, and invitation message id -> code, as the sled backend keeps them.
CREATE TABLE invitations (
    code text PRIMARY KEY,
    -- The record as JSON; its used_at is the column below.
    record text NOT NULL,
    single_use boolean NOT NULL,
    used_at bigint
);
CREATE TABLE invitation_ids (
    invitation_id text PRIMARY KEY,
    code text NOT NULL
);
