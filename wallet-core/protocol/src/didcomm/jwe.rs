//! DIDComm encrypted messages: JWE in the General JSON Serialization (RFC 7516 §7.2.1) with
//! X25519 `ECDH-ES+A256KW` (anoncrypt) or `ECDH-1PU+A256KW` (authcrypt), as DIDComm Messaging
//! v2.1 §"DIDComm Encrypted Messages" profiles them: `apv` = base64url(SHA-256 of the sorted
//! recipient kids joined with "."), and for authcrypt `skid` = sender kid, `apu` = base64url(skid).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DidCommError;
use crate::encoding::{b64u_decode, b64u_encode};
use crate::keys::{Cek, ContentEnc, Ephemeral, KeyAgreementAlg, KeyRing, KeyType, PublicKey};

/// Most recipients one JWE may list: each costs a resolution on unpack, so an envelope with
/// thousands of bogus kids is refused before any of that work.
pub const MAX_RECIPIENTS: usize = 64;

/// `typ` of an encrypted DIDComm message.
pub const ENCRYPTED_TYP: &str = "application/didcomm-encrypted+json";

#[derive(Serialize, Deserialize)]
struct JweJson {
    protected: String,
    recipients: Vec<RecipientJson>,
    iv: String,
    ciphertext: String,
    tag: String,
}

#[derive(Serialize, Deserialize)]
struct RecipientJson {
    header: RecipientHeader,
    encrypted_key: String,
}

#[derive(Serialize, Deserialize)]
struct RecipientHeader {
    kid: String,
}

#[derive(Deserialize)]
struct ProtectedHeader {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    enc: String,
    #[serde(default)]
    skid: Option<String>,
    #[serde(default)]
    apu: Option<String>,
    #[serde(default)]
    apv: Option<String>,
    epk: Option<EpkJson>,
}

#[derive(Deserialize)]
struct EpkJson {
    kty: String,
    crv: String,
    x: String,
}

/// A recipient of a message being packed: its absolute key id and X25519 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The key's DID URL (`did:...#key-2`).
    pub kid: String,
    /// The X25519 key.
    pub key: PublicKey,
}

/// The `apv` the DIDComm profile prescribes for a set of recipient kids.
pub(crate) fn apv_for(kids: &[&str]) -> [u8; 32] {
    let mut sorted: Vec<&str> = kids.to_vec();
    sorted.sort_unstable();
    Sha256::digest(sorted.join(".").as_bytes()).into()
}

fn check_recipients(recipients: &[Recipient]) -> Result<(), DidCommError> {
    if recipients.is_empty() {
        return Err(DidCommError::NoRecipients);
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(DidCommError::Malformed(format!(
            "{} recipients, more than {MAX_RECIPIENTS}",
            recipients.len()
        )));
    }
    for recipient in recipients {
        if recipient.key.kind != KeyType::X25519 {
            return Err(DidCommError::UnsupportedKey {
                kid: recipient.kid.clone(),
                found: format!("{:?}", recipient.key.kind),
            });
        }
    }
    Ok(())
}

/// The protected header, written directly: every value is a constant, base64url, or (`skid`)
/// JSON-escaped by serde.
fn protected_header(
    alg: KeyAgreementAlg,
    enc: ContentEnc,
    epk: &PublicKey,
    apv: &[u8],
    skid: Option<&str>,
) -> String {
    let sender = match skid {
        Some(skid) => format!(
            r#""skid":{},"apu":"{}","#,
            serde_json::Value::from(skid),
            b64u_encode(skid)
        ),
        None => String::new(),
    };
    let header = format!(
        r#"{{"typ":"{ENCRYPTED_TYP}","alg":"{}","enc":"{}",{sender}"apv":"{}","epk":{{"kty":"OKP","crv":"X25519","x":"{}"}}}}"#,
        alg.name(),
        enc.name(),
        b64u_encode(apv),
        b64u_encode(epk.bytes),
    );
    b64u_encode(header)
}

fn to_json(
    protected: String,
    recipients: Vec<RecipientJson>,
    sealed: crate::keys::Sealed,
) -> String {
    serde_json::to_string(&JweJson {
        protected,
        recipients,
        iv: b64u_encode(&sealed.iv),
        ciphertext: b64u_encode(&sealed.ciphertext),
        tag: b64u_encode(&sealed.tag),
    })
    .expect("a JWE always serialises")
}

/// Anoncrypt: encrypts `payload` for every recipient with one ephemeral key.
pub fn encrypt_anoncrypt(
    payload: &[u8],
    recipients: &[Recipient],
    enc: ContentEnc,
) -> Result<String, DidCommError> {
    check_recipients(recipients)?;
    let kids: Vec<&str> = recipients.iter().map(|r| r.kid.as_str()).collect();
    let apv = apv_for(&kids);
    let ephemeral = Ephemeral::generate();
    let protected = protected_header(
        KeyAgreementAlg::EcdhEsA256kw,
        enc,
        &ephemeral.public(),
        &apv,
        None,
    );
    let cek = Cek::generate(enc);
    let sealed = cek.encrypt(protected.as_bytes(), payload);
    let mut wrapped = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let kek = ephemeral.kek_es(&recipient.key, &[], &apv)?;
        wrapped.push(RecipientJson {
            header: RecipientHeader {
                kid: recipient.kid.clone(),
            },
            encrypted_key: b64u_encode(kek.wrap(&cek)),
        });
    }
    Ok(to_json(protected, wrapped, sealed))
}

/// Authcrypt: encrypts `payload` from the sender's static key (held in `ring`) for every
/// recipient, with `A256CBC-HS512` as ECDH-1PU requires.
pub fn encrypt_authcrypt(
    ring: &KeyRing,
    payload: &[u8],
    sender: &Recipient,
    recipients: &[Recipient],
) -> Result<String, DidCommError> {
    check_recipients(recipients)?;
    check_recipients(std::slice::from_ref(sender))?;
    let kids: Vec<&str> = recipients.iter().map(|r| r.kid.as_str()).collect();
    let apv = apv_for(&kids);
    let apu = sender.kid.as_bytes();
    let ephemeral = Ephemeral::generate();
    let enc = ContentEnc::A256CbcHs512;
    let protected = protected_header(
        KeyAgreementAlg::Ecdh1puA256kw,
        enc,
        &ephemeral.public(),
        &apv,
        Some(&sender.kid),
    );
    let cek = Cek::generate(enc);
    let sealed = cek.encrypt(protected.as_bytes(), payload);
    let mut wrapped = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let kek = ephemeral.kek_1pu(ring, &sender.key, &recipient.key, apu, &apv, &sealed.tag)?;
        wrapped.push(RecipientJson {
            header: RecipientHeader {
                kid: recipient.kid.clone(),
            },
            encrypted_key: b64u_encode(kek.wrap(&cek)),
        });
    }
    Ok(to_json(protected, wrapped, sealed))
}

/// A JWE parsed and checked for shape, not yet decrypted.
pub(crate) struct ParsedJwe {
    protected: String,
    pub(crate) alg: KeyAgreementAlg,
    pub(crate) enc: ContentEnc,
    /// Sender key id (authcrypt only).
    pub(crate) skid: Option<String>,
    epk: PublicKey,
    apu: Vec<u8>,
    apv: Vec<u8>,
    /// Recipient kids with their wrapped keys, in message order.
    recipients: Vec<(String, Vec<u8>)>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

fn field(name: &'static str, text: &str) -> Result<Vec<u8>, DidCommError> {
    b64u_decode(text).map_err(|_| DidCommError::Malformed(format!("{name} is not base64url")))
}

impl ParsedJwe {
    /// Parses and validates a JWE: header algorithms, the ephemeral key, `apv` against the
    /// recipient list, and for authcrypt `apu` against `skid`.
    pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedJwe, DidCommError> {
        let jwe: JweJson = serde_json::from_slice(bytes)
            .map_err(|e| DidCommError::Malformed(format!("encrypted message: {e}")))?;
        let header_bytes = field("protected header", &jwe.protected)?;
        let header: ProtectedHeader = serde_json::from_slice(&header_bytes)
            .map_err(|e| DidCommError::Malformed(format!("JWE protected header: {e}")))?;
        if let Some(typ) = &header.typ {
            if typ != ENCRYPTED_TYP {
                return Err(DidCommError::Malformed(format!(
                    "JWE typ is {typ:?}, expected {ENCRYPTED_TYP:?}"
                )));
            }
        }
        let alg = KeyAgreementAlg::from_name(&header.alg)
            .ok_or_else(|| DidCommError::UnsupportedAlg(header.alg.clone()))?;
        let enc = ContentEnc::from_name(&header.enc)
            .ok_or_else(|| DidCommError::UnsupportedEnc(header.enc.clone()))?;
        let epk = header
            .epk
            .ok_or_else(|| DidCommError::Malformed("JWE header has no epk".into()))?;
        if epk.kty != "OKP" || epk.crv != "X25519" {
            return Err(DidCommError::UnsupportedCurve(format!(
                "{}/{}",
                epk.kty, epk.crv
            )));
        }
        let epk_bytes: [u8; 32] = field("epk.x", &epk.x)?
            .try_into()
            .map_err(|_| DidCommError::Malformed("epk.x is not 32 bytes".into()))?;
        if jwe.recipients.is_empty() {
            return Err(DidCommError::Malformed("JWE has no recipients".into()));
        }
        if jwe.recipients.len() > MAX_RECIPIENTS {
            return Err(DidCommError::Malformed(format!(
                "JWE lists {} recipients, more than {MAX_RECIPIENTS}",
                jwe.recipients.len()
            )));
        }
        let mut recipients = Vec::with_capacity(jwe.recipients.len());
        for recipient in &jwe.recipients {
            recipients.push((
                recipient.header.kid.clone(),
                field("encrypted_key", &recipient.encrypted_key)?,
            ));
        }
        let apv = match &header.apv {
            Some(apv) => field("apv", apv)?,
            None => return Err(DidCommError::Malformed("JWE header has no apv".into())),
        };
        let kids: Vec<&str> = recipients.iter().map(|(kid, _)| kid.as_str()).collect();
        if apv != apv_for(&kids) {
            return Err(DidCommError::ApvMismatch);
        }
        let apu = match &header.apu {
            Some(apu) => field("apu", apu)?,
            None => Vec::new(),
        };
        if alg == KeyAgreementAlg::Ecdh1puA256kw {
            let skid = header.skid.as_deref().ok_or_else(|| {
                DidCommError::Malformed("authcrypt JWE header has no skid".into())
            })?;
            if apu != skid.as_bytes() {
                return Err(DidCommError::ApuMismatch);
            }
            if enc != ContentEnc::A256CbcHs512 {
                return Err(DidCommError::UnsupportedEnc(format!(
                    "{} with ECDH-1PU (only A256CBC-HS512 is allowed)",
                    enc.name()
                )));
            }
        }
        Ok(ParsedJwe {
            protected: jwe.protected,
            alg,
            enc,
            skid: header.skid,
            epk: PublicKey::x25519(epk_bytes),
            apu,
            apv,
            recipients,
            iv: field("iv", &jwe.iv)?,
            ciphertext: field("ciphertext", &jwe.ciphertext)?,
            tag: field("tag", &jwe.tag)?,
        })
    }

    /// The recipient kids, in message order.
    pub(crate) fn recipient_kids(&self) -> impl Iterator<Item = &str> {
        self.recipients.iter().map(|(kid, _)| kid.as_str())
    }

    /// Decrypts for our recipient `kid` (whose secret `ours` is in `ring`). For authcrypt,
    /// `sender` is the static key `skid` resolved to.
    pub(crate) fn decrypt(
        &self,
        ring: &KeyRing,
        kid: &str,
        ours: &PublicKey,
        sender: Option<&PublicKey>,
    ) -> Result<Vec<u8>, DidCommError> {
        let wrapped = self
            .recipients
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, w)| w)
            .ok_or_else(|| DidCommError::NotForUs(vec![kid.to_string()]))?;
        let kek = match (self.alg, sender) {
            (KeyAgreementAlg::EcdhEsA256kw, _) => {
                ring.kek_es(ours, &self.epk, &self.apu, &self.apv)?
            }
            (KeyAgreementAlg::Ecdh1puA256kw, Some(sender)) => {
                ring.kek_1pu(ours, &self.epk, sender, &self.apu, &self.apv, &self.tag)?
            }
            (KeyAgreementAlg::Ecdh1puA256kw, None) => {
                return Err(DidCommError::Malformed(
                    "authcrypt needs the sender's key to decrypt".into(),
                ))
            }
        };
        let cek = kek.unwrap(wrapped, self.enc)?;
        Ok(cek.decrypt(
            self.protected.as_bytes(),
            &self.iv,
            &self.ciphertext,
            &self.tag,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_header_is_json_with_an_escaped_skid() {
        let skid = "did:example:\"quoted\"\\#key-1";
        let header = protected_header(
            KeyAgreementAlg::Ecdh1puA256kw,
            ContentEnc::A256CbcHs512,
            &PublicKey::x25519([7; 32]),
            &[9; 32],
            Some(skid),
        );
        let value: serde_json::Value =
            serde_json::from_slice(&b64u_decode(&header).unwrap()).expect("header is JSON");
        assert_eq!(value["skid"], skid);
        assert_eq!(
            b64u_decode(value["apu"].as_str().unwrap()).unwrap(),
            skid.as_bytes()
        );
        assert_eq!(value["alg"], "ECDH-1PU+A256KW");
        assert_eq!(value["enc"], "A256CBC-HS512");
        assert_eq!(value["typ"], ENCRYPTED_TYP);
        assert_eq!(value["epk"], PublicKey::x25519([7; 32]).to_jwk());
        assert_eq!(value["apv"], b64u_encode([9; 32]));
        let anon = protected_header(
            KeyAgreementAlg::EcdhEsA256kw,
            ContentEnc::Xc20p,
            &PublicKey::x25519([7; 32]),
            &[9; 32],
            None,
        );
        let value: serde_json::Value =
            serde_json::from_slice(&b64u_decode(&anon).unwrap()).unwrap();
        assert!(value.get("skid").is_none() && value.get("apu").is_none());
        assert_eq!(value["enc"], "XC20P");
    }
}
