-- 0001_mediator: the mediator's store (agent/src/postgres/mediator.rs), shared by every agent
-- on this database. Keys are SHA-256 digests of DIDs (a DID may be longer than an index
-- entry may be); the DIDs themselves are kept beside them.

-- Clients granted mediation.
CREATE TABLE mediator_grants (
    client_key bytea PRIMARY KEY,
    client text NOT NULL,
    granted_at bigint NOT NULL
);

-- Recipient DID -> the client that registered it, with the client -> recipients index.
CREATE TABLE mediator_recipients (
    recipient_key bytea PRIMARY KEY,
    recipient text NOT NULL,
    client_key bytea NOT NULL,
    client text NOT NULL
);
CREATE INDEX mediator_recipients_by_client ON mediator_recipients (client_key);

-- Queued messages: one queue per recipient (its digest), in arrival order (seq).
CREATE TABLE mediator_queue (
    recipient_key bytea NOT NULL,
    seq bigint NOT NULL,
    -- The client whose byte quota the message counts against.
    client_key bytea NOT NULL,
    received_at bigint NOT NULL,
    message text NOT NULL,
    PRIMARY KEY (recipient_key, seq)
);
-- Envelopes are ciphertext (base64url): compressing them costs CPU and saves nothing, so
-- they are stored out of line as they are.
ALTER TABLE mediator_queue ALTER COLUMN message SET STORAGE EXTERNAL;
CREATE SEQUENCE mediator_queue_seq AS bigint;
-- For the expiry sweep.
CREATE INDEX mediator_queue_by_age ON mediator_queue (received_at);

-- What the queues hold, kept in the same transactions as the queue itself, so quotas hold
-- across agents. Rows are locked in one order: recipients, then clients (each sorted by key),
-- then the totals.
CREATE TABLE mediator_recipient_usage (
    recipient_key bytea PRIMARY KEY,
    count bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0
);
CREATE TABLE mediator_client_usage (
    client_key bytea PRIMARY KEY,
    bytes bigint NOT NULL DEFAULT 0
);
CREATE TABLE mediator_usage (
    id integer PRIMARY KEY CHECK (id = 1),
    count bigint NOT NULL,
    bytes bigint NOT NULL,
    -- Rows in mediator_forwards.
    forwards bigint NOT NULL
);
INSERT INTO mediator_usage (id, count, bytes, forwards) VALUES (1, 0, 0, 0);

-- Forward ids queued recently (a digest of recipient and id), so a forward is queued once.
CREATE TABLE mediator_forwards (
    key bytea PRIMARY KEY,
    expires_at bigint NOT NULL
);
CREATE INDEX mediator_forwards_by_expiry ON mediator_forwards (expires_at);
