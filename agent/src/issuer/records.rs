//! The records the DIDComm side keeps of each organisation's wallets: connections and credential
//! exchanges, with the collections and keys they are stored under.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Collections of these records.
pub(crate) const CONNECTIONS: &str = "connections";
pub(crate) const CREDENTIALS: &str = "credentials";
/// `<template id>/<thid>` → credential key, for deletion.
pub(crate) const CREDENTIALS_BY_TEMPLATE: &str = "credentials_by_template";
/// Inbound message ids already handled (wallets may send again after a timeout).
pub(crate) const SEEN: &str = "seen";

/// A wallet connected to an organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The organisation.
    pub org_id: String,
    /// The wallet's pairwise DID for this organisation.
    pub their_did: String,
    /// The customer the connection was made for, if any.
    pub customer_id: Option<String>,
    /// When it was made (ms since the epoch).
    pub created_ms: u64,
}

/// Where an issuance stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialState {
    /// The offer went out; waiting for the wallet's request.
    Offered,
    /// Signed and sent; waiting for the wallet's ack.
    Issued,
    /// The wallet verified and stored it.
    Accepted,
    /// The wallet declined the offer or refused the credential.
    Declined,
    /// Its template was deleted: revoked in the status list, the holder told.
    Revoked,
}

/// One credential exchange of an organisation, from offer to ack. `Debug` redacts the values,
/// the offered detail and the credential.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedCredential {
    /// `urn:uuid:...`, the credential's id.
    pub id: String,
    /// The issuing organisation.
    pub org_id: String,
    /// The template it is issued from.
    pub template_id: String,
    /// The customer it was offered to, if any.
    pub customer_id: Option<String>,
    /// The wallet DID it is offered to and about.
    pub holder_did: String,
    /// The offer's message id, which threads the exchange.
    pub thid: String,
    /// Where the exchange stands.
    pub state: CredentialState,
    /// The credential's values as given.
    pub values: Map<String, Value>,
    /// The detail offered (the unsigned credential); the request must echo it.
    pub detail: Value,
    /// Its index in the organisation's status list.
    pub status_index: u64,
    /// The signed credential, once issued.
    pub credential: Option<Value>,
    /// Why the wallet declined, when it did.
    pub problem: Option<String>,
    /// When the offer was made (ms since the epoch).
    pub created_ms: u64,
    /// When the record last changed (ms since the epoch).
    pub updated_ms: u64,
}

lanyard_protocol::redacted_debug!(IssuedCredential {
    shown: [
        id,
        org_id,
        template_id,
        customer_id,
        holder_did,
        thid,
        state,
        status_index,
        problem,
        created_ms,
        updated_ms
    ],
    redacted: [values, detail, credential],
});

pub(super) fn credential_key(org_id: &str, thid: &str) -> String {
    format!("{org_id}/{thid}")
}

/// An organisation's connection with the wallet DID `their_did`.
pub(super) fn connection_key(org_id: &str, their_did: &str) -> String {
    format!("{org_id}/{their_did}")
}
