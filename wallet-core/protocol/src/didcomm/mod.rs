//! DIDComm Messaging v2.1 envelopes: plaintext [`Message`]s, signed (JWS EdDSA), anoncrypt
//! (ECDH-ES+A256KW), authcrypt (ECDH-1PU+A256KW) and Routing 2.0 `forward` wrapping.
//!
//! [`DidComm`] is the entry point: it resolves the DIDs involved through a
//! [`DidResolver`], asks the [`KeyRing`] for every secret operation, and refuses anything
//! tampered, wrongly addressed, oversized or malformed with a typed [`DidCommError`].

mod jwe;
mod jws;
mod message;

use std::sync::Arc;

use jwe::ParsedJwe;
/// The JWE and JWS primitives under [`DidComm`], for the envelope tests and fuzz targets that
/// forge envelopes [`DidComm`] would never pack; not the API.
#[doc(hidden)]
pub use jwe::{encrypt_anoncrypt, encrypt_authcrypt};
pub use jwe::{Recipient, ENCRYPTED_TYP, MAX_RECIPIENTS};
#[doc(hidden)]
pub use jws::sign;
use jws::ParsedJws;
pub use jws::SIGNED_TYP;
pub use message::{now, Attachment, AttachmentData, Message, PLAINTEXT_TYP};

use crate::did::{canonical_key_id, did_of, DidError, DidResolver};
use crate::keys::{
    ContentEnc, Ed25519Verifier, KeyAgreementAlg, KeyError, KeyRing, KeyType, PublicKey,
};

/// Default bound on an incoming envelope.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Envelopes nest at most this deep (anoncrypt(authcrypt(signed(plaintext))) is three).
const MAX_LAYERS: usize = 3;

/// Why a message could not be packed or unpacked. Carries no backtrace: unpack is a hot path.
#[derive(Debug, thiserror::Error)]
pub enum DidCommError {
    /// The envelope is over the size [`UnpackOptions::max_message_bytes`] allows.
    #[error("message is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON, or JSON of the wrong shape for its layer (what is wrong is said).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A key-agreement or signing algorithm this implementation does not speak.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlg(String),
    /// A content-encryption algorithm this implementation does not speak.
    #[error("unsupported content encryption {0:?}")]
    UnsupportedEnc(String),
    /// An ephemeral or recipient key of a type or curve other than X25519/Ed25519.
    #[error("unsupported key type or curve {0}")]
    UnsupportedCurve(String),
    /// A DID's key of a kind that cannot do what is asked (e.g. signing with X25519).
    #[error("key {kid} is a {found} key, which cannot be used here")]
    UnsupportedKey {
        /// The key's id.
        kid: String,
        /// What kind of key it is.
        found: String,
    },
    /// A JWE without recipients, or a pack call given none.
    #[error("the message has no recipients")]
    NoRecipients,
    /// None of the envelope's recipient kids is a key of ours.
    #[error("the message is not addressed to any key held here (recipients: {0:?})")]
    NotForUs(Vec<String>),
    /// The JWE's `apv` is not the digest of its recipient list.
    #[error("apv does not match the recipient list: the recipients were altered")]
    ApvMismatch,
    /// The JWE's `apu` is not its `skid`.
    #[error("apu does not match skid")]
    ApuMismatch,
    /// A kid its DID's document does not list for the relationship it was used in.
    #[error("{did} has no key {kid} for {relationship}")]
    KeyNotAuthorized {
        /// The DID.
        did: String,
        /// The key id used.
        kid: String,
        /// The verification relationship required (`keyAgreement`, `authentication`).
        relationship: &'static str,
    },
    /// The DID cannot be encrypted to.
    #[error("{0} has no key-agreement (X25519) key to encrypt to")]
    NoKeyAgreementKey(String),
    /// The DID cannot sign here: none of its authentication keys is held.
    #[error("{0} has no authentication (Ed25519) key held here to sign with")]
    NoSigningKey(String),
    /// Authcrypt was asked from a sender key whose secret is not in the key ring.
    #[error("no secret is held for sender key {0}")]
    NotOurKey(String),
    /// A JWS signature that does not verify.
    #[error("signature by {kid} does not verify")]
    BadSignature {
        /// The signer's key id.
        kid: String,
    },
    /// The plaintext's `from` is not the DID that authcrypted or signed it.
    #[error("the message's from ({from:?}) is not the DID that {layer} it ({signer})")]
    SenderMismatch {
        /// The plaintext's `from`.
        from: Option<String>,
        /// The DID of the authcrypt sender or signer.
        signer: String,
        /// Which layer (`authcrypted`, `signed`).
        layer: &'static str,
    },
    /// The plaintext's `to` does not name the DID it was encrypted to.
    #[error("the message is addressed to {to:?}, not to {ours}")]
    WrongRecipient {
        /// The plaintext's `to`.
        to: Vec<String>,
        /// The DID it was encrypted to.
        ours: String,
    },
    /// The plaintext's `expires_time` has passed.
    #[error("the message expired at {expires_time} (now {now})")]
    Expired {
        /// When it expired (seconds since the epoch).
        expires_time: u64,
        /// The time now.
        now: u64,
    },
    /// More layers than anoncrypt(authcrypt(signed(plaintext))).
    #[error("envelopes nested more than {MAX_LAYERS} deep")]
    TooDeep,
    /// The DID's document names no DIDComm service to deliver to.
    #[error("{0} has no DIDComm service to deliver to")]
    NoService(String),
    /// The sender's DID was not resolved within [`UnpackOptions::sender_budget`].
    #[error("the sender {did} could not be resolved within {seconds} s")]
    SenderTimeout {
        /// The sender's DID.
        did: String,
        /// The budget.
        seconds: u64,
    },
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A DID could not be resolved or read.
    #[error(transparent)]
    Did(#[from] DidError),
}

impl From<crate::protocols::ProtocolError> for DidCommError {
    /// A protocol message of the wrong shape, as an envelope error (e.g. a bad `forward`,
    /// which a mediator refuses as unreadable).
    fn from(error: crate::protocols::ProtocolError) -> Self {
        DidCommError::Malformed(error.to_string())
    }
}

/// Which kind of envelope a JSON text is, read without building a tree of it.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    ciphertext: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    signatures: Option<serde::de::IgnoredAny>,
}

/// One envelope layer, outermost first in [`UnpackMetadata::layers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Anonymous-sender encryption to our key `recipient_kid`.
    Anoncrypt {
        /// Our key the layer was encrypted to.
        recipient_kid: String,
        /// The content encryption it used.
        enc: ContentEnc,
    },
    /// Authenticated encryption from `sender_kid` to our key `recipient_kid`.
    Authcrypt {
        /// The sender's key (its DID is proven to have sent the layer).
        sender_kid: String,
        /// Our key the layer was encrypted to.
        recipient_kid: String,
    },
    /// A signature by `signer_kid` (non-repudiable).
    Signed {
        /// The signer's key.
        signer_kid: String,
    },
}

/// What unpacking learned about how a message travelled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackMetadata {
    /// The layers peeled, outermost first.
    pub layers: Vec<Layer>,
}

impl UnpackMetadata {
    /// Some layer encrypted the message.
    pub fn encrypted(&self) -> bool {
        self.layers
            .iter()
            .any(|l| !matches!(l, Layer::Signed { .. }))
    }

    /// The sender was authenticated by authcrypt or a signature.
    pub fn authenticated(&self) -> bool {
        self.authcrypt_sender().is_some() || self.signer().is_some()
    }

    /// It was encrypted, but no layer authenticates the sender by encryption.
    pub fn anonymous_sender(&self) -> bool {
        self.encrypted() && self.authcrypt_sender().is_none()
    }

    /// A signature binds the sender to the message (a third party can check it).
    pub fn non_repudiation(&self) -> bool {
        self.signer().is_some()
    }

    /// The authcrypt sender's kid.
    pub fn authcrypt_sender(&self) -> Option<&str> {
        self.layers.iter().find_map(|l| match l {
            Layer::Authcrypt { sender_kid, .. } => Some(sender_kid.as_str()),
            _ => None,
        })
    }

    /// The DID of the authcrypt sender (the sender's kid without its fragment).
    pub fn authcrypt_sender_did(&self) -> Option<String> {
        self.authcrypt_sender().map(|kid| did_of(kid).to_string())
    }

    /// The signer's kid.
    pub fn signer(&self) -> Option<&str> {
        self.layers.iter().find_map(|l| match l {
            Layer::Signed { signer_kid } => Some(signer_kid.as_str()),
            _ => None,
        })
    }

    /// The DID proven to have sent the message (by authcrypt or signature).
    pub fn sender_did(&self) -> Option<&str> {
        self.authcrypt_sender().or(self.signer()).map(did_of)
    }

    /// The kid of ours the innermost encryption was addressed to.
    pub fn recipient_kid(&self) -> Option<&str> {
        self.layers.iter().rev().find_map(|l| match l {
            Layer::Anoncrypt { recipient_kid, .. } | Layer::Authcrypt { recipient_kid, .. } => {
                Some(recipient_kid.as_str())
            }
            Layer::Signed { .. } => None,
        })
    }
}

/// An unpacked message and how it travelled.
#[derive(Clone, Debug, PartialEq)]
pub struct Unpacked {
    /// The plaintext message.
    pub message: Message,
    /// Its layers.
    pub metadata: UnpackMetadata,
}

/// A packed message ready to send: the envelope and where to send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The envelope, as JSON text.
    pub message: String,
    /// The transport URI of the first hop (the recipient's or its mediator's endpoint).
    pub endpoint: Option<String>,
}

/// Limits and checks applied on unpack.
#[derive(Clone, Debug)]
pub struct UnpackOptions {
    /// Largest envelope read, in bytes (default [`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Refuse messages whose `expires_time` has passed.
    pub check_expiry: bool,
    /// Longest wait for a sender's DID document when it is not known without the network
    /// (a did:web signer or authcrypt sender; default 10 s).
    pub sender_budget: std::time::Duration,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            check_expiry: true,
            sender_budget: std::time::Duration::from_secs(10),
        }
    }
}

/// Packs and unpacks DIDComm messages with the keys of one [`KeyRing`].
pub struct DidComm<R> {
    keys: Arc<KeyRing>,
    resolver: R,
    options: UnpackOptions,
    verifier: Ed25519Verifier,
}

impl<R: DidResolver> DidComm<R> {
    /// Packs and unpacks with the secrets in `keys`, resolving DIDs through `resolver`, under the default [`UnpackOptions`].
    pub fn new(keys: Arc<KeyRing>, resolver: R) -> Self {
        DidComm {
            keys,
            resolver,
            options: UnpackOptions::default(),
            verifier: Ed25519Verifier::default(),
        }
    }

    /// The same, unpacking under `options`.
    pub fn with_options(mut self, options: UnpackOptions) -> Self {
        self.options = options;
        self
    }

    /// The resolver DIDs are resolved through.
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// The key ring holding our secrets.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The X25519 keys to encrypt to for `target`: a DID (all its key-agreement keys) or a
    /// DID URL naming one key.
    pub async fn recipients_of(&self, target: &str) -> Result<Vec<Recipient>, DidCommError> {
        let did = did_of(target);
        let doc = self.resolver.resolve(did).await?;
        let keys = doc.key_agreement_keys();
        let wanted = key_id(target);
        let chosen: Vec<Recipient> = keys
            .iter()
            .filter(|(kid, _)| did == target || *kid == wanted)
            .map(|(kid, key)| Recipient {
                kid: kid.clone(),
                key: *key,
            })
            .collect();
        if chosen.is_empty() {
            return Err(if did == target {
                DidCommError::NoKeyAgreementKey(target.to_string())
            } else {
                DidCommError::KeyNotAuthorized {
                    did: did.to_string(),
                    kid: target.to_string(),
                    relationship: "keyAgreement",
                }
            });
        }
        Ok(chosen)
    }

    async fn all_recipients(&self, to: &[&str]) -> Result<Vec<Recipient>, DidCommError> {
        let mut recipients = Vec::new();
        for target in to {
            for recipient in self.recipients_of(target).await? {
                if !recipients.contains(&recipient) {
                    recipients.push(recipient);
                }
            }
        }
        Ok(recipients)
    }

    /// Our key for `from` (a DID or DID URL) in `relationship`, which the ring must hold.
    async fn own_key(&self, from: &str, kind: KeyType) -> Result<Recipient, DidCommError> {
        let did = did_of(from);
        let doc = self.resolver.resolve(did).await?;
        let (keys, relationship) = match kind {
            KeyType::X25519 => (doc.key_agreement_keys(), "keyAgreement"),
            KeyType::Ed25519 => (doc.authentication_keys(), "authentication"),
        };
        let mut found_unheld = None;
        let wanted = key_id(from);
        for (kid, key) in keys {
            if did != from && *kid != wanted {
                continue;
            }
            if self.keys.contains(key) {
                return Ok(Recipient {
                    kid: kid.clone(),
                    key: *key,
                });
            }
            found_unheld = Some(kid.clone());
        }
        Err(match (found_unheld, kind) {
            (Some(kid), _) => DidCommError::NotOurKey(kid),
            (None, _) if did != from => DidCommError::KeyNotAuthorized {
                did: did.to_string(),
                kid: from.to_string(),
                relationship,
            },
            (None, KeyType::X25519) => DidCommError::NoKeyAgreementKey(from.to_string()),
            (None, KeyType::Ed25519) => DidCommError::NoSigningKey(from.to_string()),
        })
    }

    fn check_from(
        message: &Message,
        sender: &str,
        layer: &'static str,
    ) -> Result<(), DidCommError> {
        if message.from.as_deref() != Some(did_of(sender)) {
            return Err(DidCommError::SenderMismatch {
                from: message.from.clone(),
                signer: sender.to_string(),
                layer,
            });
        }
        Ok(())
    }

    /// Signs a message with an authentication key of `signer` (DID or DID URL), which must be
    /// the message's `from`.
    pub async fn pack_signed(
        &self,
        message: &Message,
        signer: &str,
    ) -> Result<String, DidCommError> {
        Self::check_from(message, signer, "signed")?;
        let key = self.own_key(signer, KeyType::Ed25519).await?;
        sign(&self.keys, message.to_json().as_bytes(), &key.kid, &key.key)
    }

    /// Anoncrypt to every key-agreement key of each of `to` (DIDs or DID URLs), sent with
    /// A256CBC-HS512.
    pub async fn pack_anoncrypt(
        &self,
        message: &Message,
        to: &[&str],
    ) -> Result<String, DidCommError> {
        self.pack_anoncrypt_bytes(message.to_json().as_bytes(), to, ContentEnc::A256CbcHs512)
            .await
    }

    /// Anoncrypt of an already serialised payload (a JWS, or a message) with a chosen `enc`.
    pub async fn pack_anoncrypt_bytes(
        &self,
        payload: &[u8],
        to: &[&str],
        enc: ContentEnc,
    ) -> Result<String, DidCommError> {
        let recipients = self.all_recipients(to).await?;
        encrypt_anoncrypt(payload, &recipients, enc)
    }

    /// Authcrypt from a key-agreement key of `from` (the message's `from` DID, or one of its
    /// DID URLs) to every key-agreement key of each of `to`; with `sign`, the message is first
    /// signed by `from`'s authentication key (non-repudiation).
    pub async fn pack_authcrypt(
        &self,
        message: &Message,
        from: &str,
        to: &[&str],
        sign_first: bool,
    ) -> Result<String, DidCommError> {
        Self::check_from(message, from, "authcrypted")?;
        let sender = self.own_key(from, KeyType::X25519).await?;
        let recipients = self.all_recipients(to).await?;
        let plaintext = message.to_json();
        if sign_first {
            let signer = self.own_key(did_of(from), KeyType::Ed25519).await?;
            let signed = sign(&self.keys, plaintext.as_bytes(), &signer.kid, &signer.key)?;
            encrypt_authcrypt(&self.keys, signed.as_bytes(), &sender, &recipients)
        } else {
            encrypt_authcrypt(&self.keys, plaintext.as_bytes(), &sender, &recipients)
        }
    }

    /// Wraps `packed` (already encrypted for `next`) in Routing 2.0 forwards for each routing
    /// key, innermost last: the result is encrypted for `routing_keys[0]`.
    pub async fn wrap_in_forward(
        &self,
        packed: String,
        next: &str,
        routing_keys: &[String],
    ) -> Result<String, DidCommError> {
        let mut envelope = packed;
        let mut next = next.to_string();
        for routing_key in routing_keys.iter().rev() {
            let payload: serde_json::Value = serde_json::from_str(&envelope)
                .map_err(|e| DidCommError::Malformed(format!("envelope to forward: {e}")))?;
            let forward =
                crate::protocols::routing::forward_message(&crate::protocols::routing::Forward {
                    next: next.clone(),
                    payload,
                });
            envelope = self
                .pack_anoncrypt(&forward, &[routing_key.as_str()])
                .await?;
            next = routing_key.clone();
        }
        Ok(envelope)
    }

    /// Packs `message` for delivery to the DID `to`: authcrypt from `from` (anoncrypt when
    /// `None`), optionally signed, then wrapped in forwards for the routing keys of `to`'s first
    /// DIDComm service. When that service's URI is itself a DID (a mediator), the mediator's
    /// own service gives the endpoint and its DID becomes the first routing key.
    pub async fn pack_for_delivery(
        &self,
        message: &Message,
        from: Option<&str>,
        to: &str,
        sign_first: bool,
    ) -> Result<Packed, DidCommError> {
        let packed = match from {
            Some(from) => {
                self.pack_authcrypt(message, from, &[to], sign_first)
                    .await?
            }
            None if sign_first => {
                return Err(DidCommError::Malformed(
                    "a signed message needs a from".into(),
                ))
            }
            None => self.pack_anoncrypt(message, &[to]).await?,
        };
        let doc = self.resolver.resolve(did_of(to)).await?;
        let Some(service) = doc.didcomm_services().into_iter().next() else {
            return Ok(Packed {
                message: packed,
                endpoint: None,
            });
        };
        let mut routing_keys = service.routing_keys.clone();
        let mut endpoint = service.uri.clone();
        if service.uri.starts_with("did:") {
            let mediator = did_of(&service.uri).to_string();
            let mediator_doc = self.resolver.resolve(&mediator).await?;
            let mediator_service = mediator_doc
                .didcomm_services()
                .into_iter()
                .next()
                .ok_or_else(|| DidCommError::NoService(mediator.clone()))?;
            endpoint = mediator_service.uri;
            if routing_keys.first().map(|k| did_of(k)) != Some(mediator.as_str()) {
                routing_keys.insert(0, mediator);
            }
            let mut outer = mediator_service.routing_keys;
            outer.extend(routing_keys);
            routing_keys = outer;
        }
        let message = self.wrap_in_forward(packed, to, &routing_keys).await?;
        Ok(Packed {
            message,
            endpoint: Some(endpoint),
        })
    }

    /// Unpacks any DIDComm message: encrypted (anoncrypt or authcrypt, nested), signed or
    /// plaintext. Checks every layer and that the sender each layer proves is the message's
    /// `from`, that an encrypted message's `to` names the DID it was decrypted for, and expiry.
    pub async fn unpack(&self, text: &str) -> Result<Unpacked, DidCommError> {
        let limit = self.options.max_message_bytes;
        if text.len() > limit {
            return Err(DidCommError::TooLarge {
                size: text.len(),
                limit,
            });
        }
        let mut metadata = UnpackMetadata::default();
        let mut current: Vec<u8> = Vec::new();
        let mut first = true;
        let message = loop {
            if metadata.layers.len() > MAX_LAYERS {
                return Err(DidCommError::TooDeep);
            }
            let bytes: &[u8] = if first { text.as_bytes() } else { &current };
            first = false;
            let probe: Probe = serde_json::from_slice(bytes)
                .map_err(|e| DidCommError::Malformed(format!("not a JSON object: {e}")))?;
            let signed_before = metadata
                .layers
                .iter()
                .any(|l| matches!(l, Layer::Signed { .. }));
            if probe.ciphertext.is_some() {
                if signed_before {
                    return Err(DidCommError::Malformed(
                        "an encrypted message inside a signed one".into(),
                    ));
                }
                let (plain, layer) = self.decrypt_layer(bytes).await?;
                metadata.layers.push(layer);
                current = plain;
            } else if probe.signatures.is_some() {
                if signed_before {
                    return Err(DidCommError::Malformed(
                        "a signed message inside a signed one".into(),
                    ));
                }
                let jws = ParsedJws::parse(bytes)?;
                let kid = jws
                    .signer_kids()
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| DidCommError::Malformed("JWS has no signatures".into()))?;
                let key = self.sender_key(&kid, KeyType::Ed25519).await?;
                jws.verify(&self.verifier, &kid, &key)?;
                metadata.layers.push(Layer::Signed { signer_kid: kid });
                current = jws.payload;
            } else {
                let message: Message = serde_json::from_slice(bytes)
                    .map_err(|e| DidCommError::Malformed(format!("plaintext message: {e}")))?;
                break message;
            }
        };
        self.check_plaintext(&message, &metadata)?;
        Ok(Unpacked { message, metadata })
    }

    fn check_plaintext(
        &self,
        message: &Message,
        metadata: &UnpackMetadata,
    ) -> Result<(), DidCommError> {
        if let Some(typ) = &message.typ {
            if typ != PLAINTEXT_TYP {
                return Err(DidCommError::Malformed(format!(
                    "plaintext typ is {typ:?}, expected {PLAINTEXT_TYP:?}"
                )));
            }
        }
        if message.id.is_empty() {
            return Err(DidCommError::Malformed("message id is empty".into()));
        }
        if message.type_.is_empty() {
            return Err(DidCommError::Malformed("message type is empty".into()));
        }
        if let Some(sender) = metadata.authcrypt_sender() {
            Self::check_from(message, sender, "authcrypted")?;
        }
        if let Some(signer) = metadata.signer() {
            Self::check_from(message, signer, "signed")?;
        }
        if let (Some(to), Some(ours)) = (&message.to, metadata.recipient_kid()) {
            let ours = did_of(ours);
            if !to.iter().any(|did| did == ours) {
                return Err(DidCommError::WrongRecipient {
                    to: to.clone(),
                    ours: ours.to_string(),
                });
            }
        }
        if self.options.check_expiry {
            if let Some(expires_time) = message.expires_time {
                let now = now();
                if expires_time < now {
                    return Err(DidCommError::Expired { expires_time, now });
                }
            }
        }
        Ok(())
    }

    async fn decrypt_layer(&self, bytes: &[u8]) -> Result<(Vec<u8>, Layer), DidCommError> {
        let jwe = ParsedJwe::parse(bytes)?;
        let mut ours = None;
        // Only DIDs known without the network: a stranger's envelope may list any number of
        // foreign kids, and none of them may make this side fetch anything.
        // A legacy did:peer:2 kid is matched as the `#key-N` it names, and reported so; the
        // wrapped key is still found under the kid the envelope wrote.
        for kid in jwe.recipient_kids() {
            let Ok(doc) = self.resolver.resolve_known(did_of(kid)) else {
                continue;
            };
            let canonical = key_id(kid);
            if let Some(key) = doc.find_key(&canonical) {
                if key.kind == KeyType::X25519 && self.keys.contains(&key) {
                    ours = Some((kid.to_string(), canonical.into_owned(), key));
                    break;
                }
            }
        }
        let Some((written, kid, key)) = ours else {
            return Err(DidCommError::NotForUs(
                jwe.recipient_kids().map(str::to_string).collect(),
            ));
        };
        match jwe.alg {
            KeyAgreementAlg::EcdhEsA256kw => {
                let plain = jwe.decrypt(&self.keys, &written, &key, None)?;
                Ok((
                    plain,
                    Layer::Anoncrypt {
                        recipient_kid: kid,
                        enc: jwe.enc,
                    },
                ))
            }
            KeyAgreementAlg::Ecdh1puA256kw => {
                let skid = jwe
                    .skid
                    .clone()
                    .ok_or_else(|| DidCommError::Malformed("authcrypt without skid".into()))?;
                let sender = self.sender_key(&skid, KeyType::X25519).await?;
                let plain = jwe.decrypt(&self.keys, &written, &key, Some(&sender))?;
                Ok((
                    plain,
                    Layer::Authcrypt {
                        sender_kid: key_id(&skid).into_owned(),
                        recipient_kid: kid,
                    },
                ))
            }
        }
    }

    /// A sender's key by kid: X25519 from keyAgreement, Ed25519 from authentication. Asked
    /// only once a layer was found to be for us; a document that needs the network is
    /// fetched within [`UnpackOptions::sender_budget`].
    async fn sender_key(&self, kid: &str, kind: KeyType) -> Result<PublicKey, DidCommError> {
        let did = did_of(kid);
        let doc = match self.resolver.resolve_known(did) {
            Ok(doc) => doc,
            // did:web is the one method resolved over the network.
            Err(error) if !did.starts_with("did:web:") => return Err(error.into()),
            Err(_) => {
                let budget = self.options.sender_budget;
                tokio::time::timeout(budget, self.resolver.resolve(did))
                    .await
                    .map_err(|_| DidCommError::SenderTimeout {
                        did: did.to_string(),
                        seconds: budget.as_secs(),
                    })??
            }
        };
        let (keys, relationship) = match kind {
            KeyType::X25519 => (doc.key_agreement_keys(), "keyAgreement"),
            KeyType::Ed25519 => (doc.authentication_keys(), "authentication"),
        };
        let wanted = key_id(kid);
        keys.iter()
            .find(|(id, _)| *id == wanted)
            .map(|(_, key)| *key)
            .ok_or_else(|| DidCommError::KeyNotAuthorized {
                did: did.to_string(),
                kid: kid.to_string(),
                relationship,
            })
    }
}

/// `kid`, with a did:peer:2 key id in the legacy multibase-fragment form read as the
/// `#key-N` it names (see [`canonical_key_id`]): how recipients and senders are matched.
fn key_id(kid: &str) -> std::borrow::Cow<'_, str> {
    match canonical_key_id(kid) {
        Some(canonical) => std::borrow::Cow::Owned(canonical),
        None => std::borrow::Cow::Borrowed(kid),
    }
}
