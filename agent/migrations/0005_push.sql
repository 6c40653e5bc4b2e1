-- 0005_push: the push gateway's devices (agent/src/push/store.rs): a wake handle -> the
-- device (platform and token) sealed by the gateway, never in the clear, and the time of the
-- last wake, which one conditional UPDATE moves forward (one wake per window across agents).
CREATE TABLE push_devices (
    handle text PRIMARY KEY,
    device bytea NOT NULL,
    -- Milliseconds since the epoch; NULL until first woken.
    last_wake_ms bigint
);
