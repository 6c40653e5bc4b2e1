//! The test's stand-in for the platform keystore.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lanyard_protocol::store::{KeyProtector, ProtectorError};

/// A [`KeyProtector`] standing in for the platform keystore: a fixed 32-byte key wraps the
/// store's data key with XChaCha20-Poly1305 (no KDF, as on a phone, so opening a store measures
/// the store and not Argon2). Test and benchmark use only: the nonce is fixed.
pub struct FileKeyProtector(pub [u8; 32]);

impl KeyProtector for FileKeyProtector {
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        let nonce = [7u8; 24];
        let mut out = nonce.to_vec();
        out.extend(
            XChaCha20Poly1305::new((&self.0).into())
                .encrypt(XNonce::from_slice(&nonce), data_key)
                .map_err(|_| ProtectorError("wrap".into()))?,
        );
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        if wrapped.len() < 24 {
            return Err(ProtectorError("unwrap: shorter than its nonce".into()));
        }
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(XNonce::from_slice(&wrapped[..24]), &wrapped[24..])
            .map_err(|_| ProtectorError("unwrap".into()))
    }
}
