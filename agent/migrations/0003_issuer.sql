-- 0003_issuer: the issuer's records (agent::postgres::PgIssuerStorage): named collections of
-- values sealed at rest. Keys are bytes (bytea compares bytewise, as sled orders them, and
-- holds any string), so a prefix scan is a range of the primary key's index.
CREATE TABLE issuer_records (
    collection text COLLATE "C" NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (collection, key)
);
