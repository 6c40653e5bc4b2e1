//! What the wallet keeps and tells: connections, offers, credentials, presentation requests,
//! and the events a [`super::WalletListener`] hears. With the `uniffi` feature, the records
//! that the apps see as they are ([`WalletEvent`], [`CredentialField`] as `Field`,
//! [`SyncReport`] as `SyncSummary`) derive their uniffi bindings here, so lanyard-ffi keeps no
//! mirror of them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A connection with an organisation (a pairwise DID on each side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The connection's id (a UUID).
    pub id: String,
    /// This wallet's DID for this connection, routed through the mediator.
    pub my_did: String,
    /// The organisation's DID for this connection.
    pub their_did: String,
    /// The organisation's name, from the invitation.
    pub label: String,
    /// The id of the invitation it was made from.
    pub invitation_id: String,
    /// What the invitation said it is for.
    pub goal: Option<String>,
    /// When it was made (Unix seconds).
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
    /// Declined by the customer, or withdrawn with its template.
    Declined,
}

/// An offered credential. Its `Debug` redacts the offered values and detail.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// The exchange's thread id.
    pub id: String,
    /// The connection it came over.
    pub connection_id: String,
    /// The organisation's name (the connection's label).
    pub issuer_name: String,
    /// What the issuer wrote with the offer.
    pub comment: Option<String>,
    /// Field name and value, as offered.
    pub attributes: Vec<(String, String)>,
    /// Field name and what it means, from the issuer's template.
    #[serde(default)]
    pub descriptions: Vec<(String, String)>,
    /// The offered credential, unsigned, as the issuer sent it.
    pub detail: Value,
    /// Where the offer stands.
    pub state: OfferState,
    /// When it arrived (Unix seconds).
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

/// A field of a stored credential or of an offer, with its description from the template when
/// known (`Field` in the apps). Its `Debug` redacts the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record), uniffi(name = "Field"))]
pub struct CredentialField {
    /// The field's name (a member of the credential's subject).
    pub name: String,
    /// Its value, as text.
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
    /// The issuer's DID, which signed it.
    pub issuer_did: String,
    /// The organisation's name (the connection's label).
    pub issuer_name: String,
    /// The credential's name, as the issuer gave it.
    pub name: Option<String>,
    /// The issuer's template it was made from, when it says.
    pub template_id: Option<String>,
    /// The subject's fields, in the credential's order.
    pub fields: Vec<CredentialField>,
    /// Valid from (Unix seconds), when it says.
    pub valid_from: Option<u64>,
    /// Valid until (Unix seconds), when it says.
    pub valid_until: Option<u64>,
    /// The signed credential, as issued.
    pub credential: Value,
    /// When it was stored (Unix seconds).
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
    /// Waiting for the customer's answer.
    Pending,
    /// Presented; the verifier's answer has not come yet.
    Sent,
    /// The verifier answered: verified.
    Verified,
    /// The verifier answered: failed.
    Failed,
    /// Declined by the customer.
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
    /// Why the verifier asks, in its words.
    pub purpose: String,
    /// The template whose credentials can answer.
    pub template_id: String,
    /// The fields the answer must disclose.
    pub required_fields: Vec<String>,
    /// The verifier's challenge, signed into the presentation.
    pub challenge: String,
    /// The domain the presentation is bound to, as the verifier asked.
    pub domain: String,
    /// `domain` when the wallet checked it: the verifier's DIDComm endpoint is on that host
    /// (or its did:web is). `None`: the request's domain is not the verifier's.
    #[serde(default)]
    pub verified_domain: Option<String>,
    /// The invitation it came in, answered with its id as `pthid`.
    pub invitation_id: Option<String>,
    /// Where the request stands.
    pub state: RequestState,
    /// What the verifier said of the presentation.
    pub outcome: Vec<String>,
    /// When it arrived (Unix seconds).
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

    /// The ids of those of `credentials` that can answer this request, in their order.
    pub fn matching(&self, credentials: &[StoredCredential]) -> Vec<String> {
        credentials
            .iter()
            .filter(|c| self.matches(c))
            .map(|c| c.id.clone())
            .collect()
    }
}

impl RequestState {
    /// The state's name, as the apps see it (`"Pending"`, `"Sent"`, `"Verified"`, `"Failed"`,
    /// `"Declined"`).
    pub fn name(self) -> &'static str {
        match self {
            RequestState::Pending => "Pending",
            RequestState::Sent => "Sent",
            RequestState::Verified => "Verified",
            RequestState::Failed => "Failed",
            RequestState::Declined => "Declined",
        }
    }
}

/// What accepting an invitation led to.
#[derive(Clone, Debug, PartialEq)]
pub enum Accepted {
    /// A connection with the inviting organisation (new, or the one this invitation made
    /// before).
    Connection(Connection),
    /// A verifier's request, stored and waiting for the customer's answer.
    PresentationRequest(RequestRecord),
}

/// What a sync did (`SyncSummary` in the apps).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(
    feature = "uniffi",
    derive(uniffi::Record),
    uniffi(name = "SyncSummary")
)]
pub struct SyncReport {
    /// Messages picked up and processed.
    pub processed: u64,
    /// Messages already processed before (redelivered).
    pub duplicates: u64,
    /// Messages refused (unreadable, unknown sender, bad content).
    pub refused: u64,
}

/// What the app hears.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WalletEvent {
    /// A connection with an organisation was made.
    ConnectionEstablished {
        /// The connection's id.
        connection_id: String,
        /// The organisation's name.
        label: String,
    },
    /// An offer arrived and waits for the customer (unless offers are auto-accepted).
    OfferReceived {
        /// The offer's id.
        offer_id: String,
        /// The organisation's name.
        issuer_name: String,
    },
    /// A credential was verified and stored.
    CredentialStored {
        /// The credential's id.
        credential_id: String,
        /// The organisation's name.
        issuer_name: String,
    },
    /// Credentials removed: by the issuer's deletion notice (with the template) or by the
    /// customer.
    CredentialsRemoved {
        /// The deleted template, for an issuer's notice; none when the customer deleted one.
        template_id: Option<String>,
        /// How many were removed.
        count: u64,
    },
    /// A verifier asks for a presentation.
    PresentationRequested {
        /// The request's id.
        request_id: String,
        /// What the verifier calls itself (a claim, not proven).
        verifier_name: String,
    },
    /// The presentation went out to the verifier.
    PresentationSent {
        /// The request's id.
        request_id: String,
    },
    /// The verifier said what it made of the presentation.
    PresentationResult {
        /// The request's id.
        request_id: String,
        /// Whether the verifier verified it.
        verified: bool,
        /// What the verifier said.
        reasons: Vec<String>,
    },
    /// Something was refused or reported; the text says what.
    Problem {
        /// What happened, fit to show.
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

    #[test]
    fn a_request_state_is_named_as_the_apps_saw_it() {
        // The apps' `state` strings were the Debug names; they stay the same.
        for state in [
            RequestState::Pending,
            RequestState::Sent,
            RequestState::Verified,
            RequestState::Failed,
            RequestState::Declined,
        ] {
            assert_eq!(state.name(), format!("{state:?}"));
        }
    }

    #[test]
    fn a_request_matches_the_credentials_of_its_template_with_its_fields() {
        let credential = |id: &str, template: Option<&str>, fields: &[&str]| StoredCredential {
            id: id.into(),
            connection_id: "c".into(),
            issuer_did: "did:web:acme.example".into(),
            issuer_name: "Acme".into(),
            name: None,
            template_id: template.map(str::to_string),
            fields: fields
                .iter()
                .map(|name| CredentialField {
                    name: name.to_string(),
                    value: "v".into(),
                    description: None,
                })
                .collect(),
            valid_from: None,
            valid_until: None,
            credential: json!({}),
            stored_at: 0,
        };
        let request = RequestRecord {
            id: "r".into(),
            verifier_did: "did:web:verifier.example".into(),
            verifier_name: "Verifier".into(),
            purpose: "entry".into(),
            template_id: "t1".into(),
            required_fields: vec!["level".into()],
            challenge: "x".into(),
            domain: "verifier.example".into(),
            verified_domain: None,
            invitation_id: None,
            state: RequestState::Pending,
            outcome: Vec::new(),
            received_at: 0,
        };
        let credentials = [
            credential("a", Some("t1"), &["level", "email"]),
            credential("b", Some("t2"), &["level"]),
            credential("c", Some("t1"), &["email"]),
            credential("d", None, &["level"]),
            credential("e", Some("t1"), &["level"]),
        ];
        assert_eq!(request.matching(&credentials), ["a", "e"]);
    }
}
