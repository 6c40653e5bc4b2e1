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
    /// Not the shape the data model requires (what is missing or wrong is said).
    #[error("{0}")]
    Shape(String),
    /// The signature, or what the proof says of itself, does not check out.
    #[error("the proof does not verify: {0}")]
    Proof(String),
    /// The proof's verification method could not be resolved to a key of its controller.
    #[error("the proof's key {key} cannot be resolved: {reason}")]
    UnknownKey {
        /// The verification method.
        key: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// Past its `validUntil` (RFC 3339).
    #[error("the credential expired at {0}")]
    Expired(String),
    /// Before its `validFrom` (RFC 3339).
    #[error("the credential is not valid before {0}")]
    NotYetValid(String),
    /// Valid in itself but not what was expected (issuer, subject, challenge, domain...).
    #[error("{0}")]
    Mismatch(String),
    /// The status list could not be read, or its entry could not be checked.
    #[error("the status list: {0}")]
    StatusList(String),
    /// The key ring could not sign.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl CredentialError {
    pub(crate) fn shape(message: impl Into<String>) -> CredentialError {
        CredentialError::Shape(message.into())
    }
}
