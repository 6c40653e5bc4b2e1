-- 0006_mediator_push: each mediated client's wake registration (agent/src/postgres/mediator.rs).
-- Only the wake service's name and the push gateway's opaque handle are kept ("apns <handle>"):
-- the device token itself is held by the push gateway, sealed, never here.
CREATE TABLE mediator_wakes (
    client_key bytea PRIMARY KEY,
    registration text NOT NULL,
    updated_at bigint NOT NULL
);
