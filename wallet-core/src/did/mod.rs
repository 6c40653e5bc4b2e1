//! Decentralized identifiers: did:key, did:peer:2 and resolution to DID documents.
