//! Verifiable credentials as Lanyard issues, holds and verifies them: the W3C VC Data Model 2.0
//! ([`vc`]), secured with Data Integrity proofs of the `eddsa-jcs-2022` cryptosuite
//! ([`data_integrity`], over RFC 8785 canonical JSON, [`jcs`]), and revocation through the W3C
//! Bitstring Status List ([`status_list`]). Signing goes through the [`crate::keys::KeyRing`];
//! verification resolves the signer's DID through a [`crate::did::DidResolver`].

pub mod data_integrity;
pub mod jcs;
pub mod status_list;
pub mod time;
pub mod vc;

/// Why a credential, presentation or proof was refused; the message names the check.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Shape(String),
    #[error("the proof does not verify: {0}")]
    Proof(String),
    #[error("the proof's key {key} cannot be resolved: {reason}")]
    UnknownKey { key: String, reason: String },
    #[error("the credential expired at {0}")]
    Expired(String),
    #[error("the credential is not valid before {0}")]
    NotYetValid(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("the status list: {0}")]
    StatusList(String),
    #[error("signing failed: {0}")]
    Signing(String),
}

impl CredentialError {
    pub(crate) fn shape(message: impl Into<String>) -> CredentialError {
        CredentialError::Shape(message.into())
    }
}
