-- 0004_identity: the identity every agent on this database shares (issue 13): the mediator's
-- keys and the issuer store's data key, each sealed (XChaCha20-Poly1305) under the key file
-- every agent of the deployment is given. The public keys and the endpoint the DID was made
-- with are readable; no secret byte is stored in plaintext. One row (id 1): the first agent
-- inserts it, the others read it.
CREATE TABLE lanyard_identity (
    id smallint PRIMARY KEY CHECK (id = 1),
    endpoint text NOT NULL,
    signing_key text NOT NULL,
    agreement_key text NOT NULL,
    signing_sealed bytea NOT NULL,
    agreement_sealed bytea NOT NULL,
    issuer_key_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
