//! JWE content encryption (RFC 7518 §5): `A256CBC-HS512` (§5.2.5), `A256GCM` (§5.3) and
//! `XC20P` (XChaCha20-Poly1305, draft-amringer-jose-chacha). The content-encryption key is
//! an opaque [`Cek`] that zeroizes on drop.

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha512;
use zeroize::Zeroizing;

use super::KeyError;

/// A JWE `enc` value this crate can decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentEnc {
    /// AES-256-CBC with HMAC-SHA-512 truncated to 256 bits: what DIDComm senders must send.
    A256CbcHs512,
    /// AES-256-GCM.
    A256Gcm,
    /// XChaCha20-Poly1305.
    Xc20p,
}

impl ContentEnc {
    /// The `enc` header value.
    pub fn name(self) -> &'static str {
        match self {
            ContentEnc::A256CbcHs512 => "A256CBC-HS512",
            ContentEnc::A256Gcm => "A256GCM",
            ContentEnc::Xc20p => "XC20P",
        }
    }

    /// Parses an `enc` header value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "A256CBC-HS512" => Some(ContentEnc::A256CbcHs512),
            "A256GCM" => Some(ContentEnc::A256Gcm),
            "XC20P" => Some(ContentEnc::Xc20p),
            _ => None,
        }
    }

    /// Length of the content-encryption key in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentEnc::A256CbcHs512 => 64,
            ContentEnc::A256Gcm | ContentEnc::Xc20p => 32,
        }
    }

    /// Length of the initialisation vector in bytes.
    pub fn iv_len(self) -> usize {
        match self {
            ContentEnc::A256CbcHs512 => 16,
            ContentEnc::A256Gcm => 12,
            ContentEnc::Xc20p => 24,
        }
    }

    /// Length of the authentication tag in bytes.
    pub fn tag_len(self) -> usize {
        match self {
            ContentEnc::A256CbcHs512 => 32,
            ContentEnc::A256Gcm | ContentEnc::Xc20p => 16,
        }
    }
}

/// The output of content encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// The nonce or IV.
    pub iv: Vec<u8>,
    /// The encrypted content.
    pub ciphertext: Vec<u8>,
    /// The authentication tag.
    pub tag: Vec<u8>,
}

/// A content-encryption key. Only this module and the key wrap see its bytes.
pub struct Cek {
    enc: ContentEnc,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Cek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cek({}, [redacted])", self.enc.name())
    }
}

impl Cek {
    /// A fresh random key for `enc` from the OS RNG.
    pub fn generate(enc: ContentEnc) -> Cek {
        let mut key = Zeroizing::new(vec![0u8; enc.key_len()]);
        OsRng.fill_bytes(&mut key);
        Cek { enc, key }
    }

    /// Takes ownership of unwrapped key bytes, checking their length against `enc`.
    pub(super) fn from_bytes(enc: ContentEnc, key: Zeroizing<Vec<u8>>) -> Result<Cek, KeyError> {
        if key.len() != enc.key_len() {
            return Err(KeyError::BadLength {
                field: "content key",
                alg: enc.name(),
                len: key.len(),
            });
        }
        Ok(Cek { enc, key })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// The content cipher this key is for.
    pub fn enc(&self) -> ContentEnc {
        self.enc
    }

    /// Encrypts `plaintext` with a fresh random IV; `aad` is the JWE's ASCII protected header.
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        let mut iv = vec![0u8; self.enc.iv_len()];
        OsRng.fill_bytes(&mut iv);
        match self.enc {
            ContentEnc::A256CbcHs512 => {
                let (mac_key, enc_key) = self.key.split_at(32);
                let ciphertext = cbc::Encryptor::<aes::Aes256>::new(enc_key.into(), iv[..].into())
                    .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
                let tag = cbc_hs512_tag(mac_key, aad, &iv, &ciphertext);
                Sealed {
                    iv,
                    ciphertext,
                    tag,
                }
            }
            ContentEnc::A256Gcm => {
                let cipher = aes_gcm::Aes256Gcm::new(self.key[..].into());
                let mut buffer = plaintext.to_vec();
                let tag = cipher
                    .encrypt_in_place_detached(iv[..].into(), aad, &mut buffer)
                    .expect("AES-GCM encrypts any message shorter than 64 GiB");
                Sealed {
                    iv,
                    ciphertext: buffer,
                    tag: tag.to_vec(),
                }
            }
            ContentEnc::Xc20p => {
                let cipher = chacha20poly1305::XChaCha20Poly1305::new(self.key[..].into());
                let mut buffer = plaintext.to_vec();
                let tag = cipher
                    .encrypt_in_place_detached(iv[..].into(), aad, &mut buffer)
                    .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
                Sealed {
                    iv,
                    ciphertext: buffer,
                    tag: tag.to_vec(),
                }
            }
        }
    }

    /// Authenticates and decrypts. Any change to `aad`, `iv`, `ciphertext` or `tag` fails
    /// with [`KeyError::DecryptFailed`]; lengths are checked first and named.
    pub fn decrypt(
        &self,
        aad: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let alg = self.enc.name();
        if iv.len() != self.enc.iv_len() {
            return Err(KeyError::BadLength {
                field: "iv",
                alg,
                len: iv.len(),
            });
        }
        if tag.len() != self.enc.tag_len() {
            return Err(KeyError::BadLength {
                field: "tag",
                alg,
                len: tag.len(),
            });
        }
        match self.enc {
            ContentEnc::A256CbcHs512 => {
                let (mac_key, enc_key) = self.key.split_at(32);
                // Constant-time comparison of the left half of HMAC-SHA-512 (RFC 7518 §5.2.2.2).
                let mac = cbc_hs512_mac(mac_key, aad, iv, ciphertext);
                mac.verify_truncated_left(tag)
                    .map_err(|_| KeyError::DecryptFailed)?;
                cbc::Decryptor::<aes::Aes256>::new(enc_key.into(), iv.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
                    .map_err(|_| KeyError::DecryptFailed)
            }
            ContentEnc::A256Gcm => {
                let cipher = aes_gcm::Aes256Gcm::new(self.key[..].into());
                let mut buffer = ciphertext.to_vec();
                cipher
                    .decrypt_in_place_detached(iv.into(), aad, &mut buffer, tag.into())
                    .map_err(|_| KeyError::DecryptFailed)?;
                Ok(buffer)
            }
            ContentEnc::Xc20p => {
                let cipher = chacha20poly1305::XChaCha20Poly1305::new(self.key[..].into());
                let mut buffer = ciphertext.to_vec();
                cipher
                    .decrypt_in_place_detached(iv.into(), aad, &mut buffer, tag.into())
                    .map_err(|_| KeyError::DecryptFailed)?;
                Ok(buffer)
            }
        }
    }
}

/// HMAC-SHA-512 over AAD ‖ IV ‖ ciphertext ‖ AL (AAD length in bits, 64-bit big-endian).
fn cbc_hs512_mac(mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> Hmac<Sha512> {
    let mut mac =
        <Hmac<Sha512> as Mac>::new_from_slice(mac_key).expect("HMAC takes a key of any length");
    mac.update(aad);
    mac.update(iv);
    mac.update(ciphertext);
    mac.update(&((aad.len() as u64) * 8).to_be_bytes());
    mac
}

fn cbc_hs512_tag(mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let full = cbc_hs512_mac(mac_key, aad, iv, ciphertext)
        .finalize()
        .into_bytes();
    full[..32].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cipher_round_trips_and_detects_tampering() {
        for enc in [
            ContentEnc::A256CbcHs512,
            ContentEnc::A256Gcm,
            ContentEnc::Xc20p,
        ] {
            let cek = Cek::generate(enc);
            let sealed = cek.encrypt(b"header", b"hello lanyard");
            assert_eq!(sealed.iv.len(), enc.iv_len());
            assert_eq!(sealed.tag.len(), enc.tag_len());
            let opened = cek
                .decrypt(b"header", &sealed.iv, &sealed.ciphertext, &sealed.tag)
                .unwrap_or_else(|e| panic!("{enc:?} failed to open its own output: {e}"));
            assert_eq!(opened, b"hello lanyard");
            assert_eq!(
                cek.decrypt(b"headeR", &sealed.iv, &sealed.ciphertext, &sealed.tag),
                Err(KeyError::DecryptFailed),
                "{enc:?} accepted a changed AAD"
            );
            let mut bad_ct = sealed.ciphertext.clone();
            bad_ct[0] ^= 1;
            assert_eq!(
                cek.decrypt(b"header", &sealed.iv, &bad_ct, &sealed.tag),
                Err(KeyError::DecryptFailed),
                "{enc:?} accepted a changed ciphertext"
            );
        }
    }

    /// RFC 7518 Appendix B.3 test case for AES_256_CBC_HMAC_SHA_512.
    #[test]
    fn a256cbc_hs512_matches_rfc7518_b3() {
        let key: Vec<u8> = (0u8..64).collect();
        let cek = Cek::from_bytes(ContentEnc::A256CbcHs512, Zeroizing::new(key)).unwrap();
        let plaintext = hex("41206369706865722073797374656d206d757374206e6f7420626520726571756972656420746f206265207365637265742c20616e64206974206d7573742062652061626c6520746f2066616c6c20696e746f207468652068616e6473206f662074686520656e656d7920776974686f757420696e636f6e76656e69656e6365");
        let iv = hex("1af38c2dc2b96ffdd86694092341bc04");
        let aad = hex(
            "546865207365636f6e64207072696e6369706c65206f662041756775737465204b6572636b686f666673",
        );
        let expected_ct = hex("4affaaadb78c31c5da4b1b590d10ffbd3dd8d5d302423526912da037ecbcc7bd822c301dd67c373bccb584ad3e9279c2e6d12a1374b77f077553df829410446b36ebd97066296ae6427ea75c2e0846a11a09ccf5370dc80bfecbad28c73f09b3a3b75e662a2594410ae496b2e2e6609e31e6e02cc837f053d21f37ff4f51950bbe2638d09dd7a4930930806d0703b1f6");
        let expected_tag = hex("4dd3b4c088a7f45c216839645b2012bf2e6269a8c56a816dbc1b267761955bc5");
        let (mac_key, enc_key) = cek.bytes().split_at(32);
        let ct = cbc::Encryptor::<aes::Aes256>::new(enc_key.into(), iv[..].into())
            .encrypt_padded_vec_mut::<Pkcs7>(&plaintext);
        assert_eq!(ct, expected_ct, "ciphertext differs from RFC 7518 B.3");
        assert_eq!(cbc_hs512_tag(mac_key, &aad, &iv, &ct), expected_tag);
        let opened = cek.decrypt(&aad, &iv, &expected_ct, &expected_tag).unwrap();
        assert_eq!(opened, plaintext);
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
