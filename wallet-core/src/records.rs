//! What the wallet keeps and tells: connections, offers, credentials, presentation requests,
//! and the events a [`super::WalletListener`] hears.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A connection with an organisation (a pairwise DID on each side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    /// This wallet's DID for this connection, routed through the mediator.
    pub my_did: String,
    pub their_did: String,
    /// The organisation's name, from the invitation.
    pub label: String,
    pub invitation_id: String,
    pub goal: Option<String>,
    pub created_at: u64,
}

/// Where an offer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfferState {
    /// Waiting for the customer's decision.
    Pending,
    /// Requested; the credential is on its way.
    Requested,
    /// The credential was stored.
    Done,
    Declined,
}

/// An offered credential. Its `Debug` redacts the offered values and detail.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// The exchange's thread id.
    pub id: String,
    pub connection_id: String,
    pub issuer_name: String,
    pub comment: Option<String>,
    /// Field name and value, as offered.
    pub attributes: Vec<(String, String)>,
    /// Field name and what it means, from the issuer's template.
    #[serde(default)]
    pub descriptions: Vec<(String, String)>,
    pub detail: Value,
    pub state: OfferState,
    pub received_at: u64,
}

lanyard_protocol::redacted_debug!(OfferRecord {
    shown: [
        id,
        connection_id,
        issuer_name,
        descriptions,
        state,
        received_at
    ],
    redacted: [comment, attributes, detail],
});

/// A field of a stored credential, with its description from the template when known. Its
/// `Debug` redacts the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialField {
    pub name: String,
    pub value: String,
    /// What the field means, from the issuer's template, when the offer said.
    #[serde(default)]
    pub description: Option<String>,
}

lanyard_protocol::redacted_debug!(CredentialField {
    shown: [name, description],
    redacted: [value],
});

/// A verified credential in the wallet. Its `Debug` redacts the field values and the signed
/// credential.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// The credential's id (`urn:uuid:...`).
    pub id: String,
    /// The connection it was issued over.
    pub connection_id: String,
    pub issuer_did: String,
    pub issuer_name: String,
    pub name: Option<String>,
    pub template_id: Option<String>,
    pub fields: Vec<CredentialField>,
    pub valid_from: Option<u64>,
    pub valid_until: Option<u64>,
    /// The signed credential, as issued.
    pub credential: Value,
    pub stored_at: u64,
}

lanyard_protocol::redacted_debug!(StoredCredential {
    shown: [
        id,
        connection_id,
        issuer_did,
        issuer_name,
        name,
        template_id,
        fields,
        valid_from,
        valid_until,
        stored_at
    ],
    redacted: [credential],
});

/// Where a presentation request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestState {
    Pending,
    Sent,
    /// The verifier answered: verified.
    Verified,
    /// The verifier answered: failed.
    Failed,
    Declined,
}

/// A verifier's request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request's thread id.
    pub id: String,
    /// The verifier's DID: the answer is encrypted to it, so only its holder reads it.
    pub verifier_did: String,
    /// What the verifier calls itself (the invitation's label or the request's name): a claim,
    /// not proven. Show it beside [`RequestRecord::verified_domain`].
    pub verifier_name: String,
    pub purpose: String,
    pub template_id: String,
    pub required_fields: Vec<String>,
    pub challenge: String,
    /// The domain the presentation is bound to, as the verifier asked.
    pub domain: String,
    /// `domain` when the wallet checked it: the verifier's DIDComm endpoint is on that host
    /// (or its did:web is). `None`: the request's domain is not the verifier's.
    #[serde(default)]
    pub verified_domain: Option<String>,
    /// The invitation it came in, answered with its id as `pthid`.
    pub invitation_id: Option<String>,
    pub state: RequestState,
    /// What the verifier said of the presentation.
    pub outcome: Vec<String>,
    pub received_at: u64,
}

impl RequestRecord {
    /// Whether `credential` can answer this request.
    pub fn matches(&self, credential: &StoredCredential) -> bool {
        credential.template_id.as_deref() == Some(self.template_id.as_str())
            && self
                .required_fields
                .iter()
                .all(|f| credential.fields.iter().any(|field| &field.name == f))
    }
}

/// What accepting an invitation led to.
#[derive(Clone, Debug, PartialEq)]
pub enum Accepted {
    Connection(Connection),
    PresentationRequest(RequestRecord),
}

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Messages picked up and processed.
    pub processed: usize,
    /// Messages already processed before (redelivered).
    pub duplicates: usize,
    /// Messages refused (unreadable, unknown sender, bad content).
    pub refused: usize,
}

/// What the app hears.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WalletEvent {
    ConnectionEstablished {
        connection_id: String,
        label: String,
    },
    OfferReceived {
        offer_id: String,
        issuer_name: String,
    },
    CredentialStored {
        credential_id: String,
        issuer_name: String,
    },
    /// Credentials removed: by the issuer's deletion notice (with the template) or by the
    /// customer.
    CredentialsRemoved {
        template_id: Option<String>,
        count: usize,
    },
    PresentationRequested {
        request_id: String,
        verifier_name: String,
    },
    PresentationSent {
        request_id: String,
    },
    PresentationResult {
        request_id: String,
        verified: bool,
        reasons: Vec<String>,
    },
    /// Something was refused or reported; the text says what.
    Problem {
        message: String,
    },
}

/// The subject's members as fields, in the credential's order.
pub(crate) fn fields_of(
    claims: &Map<String, Value>,
    descriptions: &[(String, String)],
) -> Vec<CredentialField> {
    claims
        .iter()
        .map(|(name, value)| CredentialField {
            name: name.clone(),
            value: value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string()),
            description: descriptions
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, d)| d.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offers_and_credentials_show_no_personal_data_in_debug() {
        let offer = OfferRecord {
            id: "thread-1".into(),
            connection_id: "c".into(),
            issuer_name: "Acme".into(),
            comment: Some("for Jane Secretname".into()),
            attributes: vec![("email".into(), "jane.secret@example.com".into())],
            descriptions: vec![("email".into(), "Email address".into())],
            detail: json!({ "credentialSubject": { "email": "jane.secret@example.com" } }),
            state: OfferState::Pending,
            received_at: 1,
        };
        let credential = StoredCredential {
            id: "urn:uuid:1".into(),
            connection_id: "c".into(),
            issuer_did: "did:web:acme.example".into(),
            issuer_name: "Acme".into(),
            name: Some("Membership".into()),
            template_id: None,
            fields: vec![CredentialField {
                name: "email".into(),
                value: "jane.secret@example.com".into(),
                description: Some("Email address".into()),
            }],
            valid_from: None,
            valid_until: None,
            credential: json!({ "credentialSubject": { "email": "jane.secret@example.com" } }),
            stored_at: 2,
        };
        for shown in [format!("{offer:?}"), format!("{credential:?}")] {
            assert!(!shown.contains("jane.secret"), "{shown}");
            assert!(!shown.contains("Secretname"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
            assert!(
                shown.contains("Email address"),
                "descriptions are shown: {shown}"
            );
        }
    }
}
