//! The organisations' secrets in the issuer store: their secret keys and callback secrets, in
//! collections of their own, each value sealed under a key derived from the issuer store's data
//! key before the store seals it again. Kept there, not in an agent's data folder, so that every
//! agent on a shared store can sign and decrypt for an organisation another agent created: an
//! agent whose key ring lacks an organisation's key loads it when it first needs it.

use hmac::{Hmac, Mac};
use lanyard_protocol::did::multikey_encode;
use lanyard_protocol::keys::{KeyRing, PublicKey};
use lanyard_protocol::store::{Sealer, Store};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::store::{BatchError, Expect, IssuerStorage, Write};
use super::{Issuer, IssuerError, Organisation, ORGS};

/// Public key (Multikey) → its sealed secret.
pub(super) const ORG_SECRET_KEYS: &str = "org_secret_keys";
/// Organisation id → its sealed callback secret.
pub(super) const CALLBACK_SECRETS: &str = "callback_secrets";
/// The tree the old identity store kept callback secrets in (read once, by
/// [`Issuer::adopt_local_secrets`]).
const LOCAL_SECRETS_TREE: &str = "callback_secrets";
/// The sealing's tree name of a callback secret.
const CALLBACK_SECRET_SEAL: &str = "callback secret";
/// What the secrets' sealing key is derived with, from the issuer store's data key.
const SECRETS_KEY_LABEL: &[u8] = b"lanyard issuer secrets v1";

/// The sealer of the organisations' secrets: under HMAC-SHA256(issuer store key, label), so a
/// secret's inner sealing and the store's outer one use different keys.
pub(super) fn secrets_sealer(issuer_store_key: &[u8; 32]) -> Sealer {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(issuer_store_key)
        .expect("HMAC takes a key of any length");
    mac.update(SECRETS_KEY_LABEL);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&mac.finalize().into_bytes());
    Sealer::new(&key)
}

/// The write storing `key`'s secret (from `ring`), sealed.
pub(super) fn key_write(
    ring: &KeyRing,
    sealer: &Sealer,
    key: &PublicKey,
) -> Result<Write, IssuerError> {
    let place = multikey_encode(key);
    let sealed = ring
        .export_sealed(key, sealer, place.as_bytes())
        .map_err(|e| IssuerError::internal(&format!("sealing the key {place}: {e}")))?;
    Ok(Write::Put {
        collection: ORG_SECRET_KEYS,
        key: place,
        value: sealed,
    })
}

impl<S: IssuerStorage> Issuer<S> {
    /// Makes sure the key ring holds `key`'s secret, loading it from the issuer store when it
    /// does not (an organisation another agent created).
    pub(super) async fn ensure_key(&self, key: &PublicKey) -> Result<(), IssuerError> {
        if self.keys.contains(key) {
            return Ok(());
        }
        let place = multikey_encode(key);
        let sealed = self
            .storage
            .get(ORG_SECRET_KEYS, &place)
            .await?
            .ok_or_else(|| {
                IssuerError::internal(&format!("the secret of key {place} is not stored"))
            })?;
        let loaded = self
            .keys
            .import_sealed(&sealed, &self.secrets, place.as_bytes())
            .map_err(|e| IssuerError::internal(&format!("the stored key {place}: {e}")))?;
        if loaded != *key {
            self.keys.remove(&loaded);
            return Err(IssuerError::internal(&format!(
                "the key stored as {place} is another key"
            )));
        }
        Ok(())
    }

    /// Makes sure the key ring holds the key agreement secrets of `did` (an organisation's
    /// DIDComm DID a message is packed from), loading them from the issuer store when this
    /// agent has not used the organisation since it started. A DID that does not resolve
    /// without the network, or whose keys the ring holds, costs nothing.
    pub(super) async fn ensure_keys_of(&self, did: &str) -> Result<(), IssuerError> {
        let Ok(document) = lanyard_protocol::did::resolve_local(did) else {
            return Ok(());
        };
        for (_, key) in document.key_agreement_keys() {
            self.ensure_key(key).await?;
        }
        Ok(())
    }

    /// Loads into the key ring the keys of the organisation that receives at `agreement` (a
    /// key agreement key an envelope was encrypted to and this ring lacks); true when it did.
    /// An unknown key costs one indexed read and stores nothing.
    pub async fn load_keys_for(&self, agreement: &PublicKey) -> Result<bool, IssuerError> {
        use super::store::IssuerStorageExt;
        let org_id: Option<String> = self
            .storage
            .get_json(super::ORG_AGREEMENT_KEYS, &multikey_encode(agreement))
            .await?;
        match org_id {
            // `org` loads the organisation's keys.
            Some(id) => Ok(self.org(&id).await?.is_some()),
            None => Ok(false),
        }
    }

    /// Whether the organisation `org_id` has a callback secret.
    pub(super) async fn has_callback_secret(&self, org_id: &str) -> Result<bool, IssuerError> {
        Ok(self.storage.get(CALLBACK_SECRETS, org_id).await?.is_some())
    }

    /// The write storing `secret` as the callback secret of `org_id`, sealed.
    pub(super) fn callback_secret_write(
        &self,
        org_id: &str,
        secret: &[u8],
    ) -> Result<Write, IssuerError> {
        let sealed = self
            .secrets
            .seal(CALLBACK_SECRET_SEAL, org_id.as_bytes(), secret)
            .map_err(|e| IssuerError::internal(&format!("sealing the callback secret: {e}")))?;
        Ok(Write::Put {
            collection: CALLBACK_SECRETS,
            key: org_id.to_string(),
            value: sealed,
        })
    }

    /// The callback secret of `org_id`, if it has one.
    pub(super) async fn callback_secret(
        &self,
        org_id: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, IssuerError> {
        let Some(sealed) = self.storage.get(CALLBACK_SECRETS, org_id).await? else {
            return Ok(None);
        };
        self.secrets
            .open(CALLBACK_SECRET_SEAL, org_id.as_bytes(), &sealed)
            .map(Some)
            .map_err(|e| IssuerError::internal(&format!("the callback secret: {e}")))
    }

    /// Copies into the issuer store the organisations' secret keys and callback secrets that a
    /// data folder of an earlier version kept in its local identity store (`identity`, whose
    /// keys are in this issuer's key ring). Idempotent: what the issuer store holds already is
    /// left as it is. Returns how many secrets were copied.
    pub async fn adopt_local_secrets(&self, identity: &Store) -> Result<usize, IssuerError> {
        const PAGE: usize = 256;
        let mut copied = 0;
        let mut last: Option<String> = None;
        loop {
            let page = self
                .storage
                .scan_after(ORGS, "", last.as_deref(), PAGE)
                .await?;
            let read = page.len();
            for (id, bytes) in page {
                let org: Organisation = serde_json::from_slice(&bytes)
                    .map_err(|e| IssuerError::internal(&format!("organisation {id}: {e}")))?;
                last = Some(id);
                let mut writes = Vec::new();
                let mut expect = Vec::new();
                for multikey in [&org.signing_key, &org.agreement_key] {
                    let key = lanyard_protocol::did::multikey_decode(multikey).map_err(|e| {
                        IssuerError::internal(&format!("organisation {}: {e}", org.id))
                    })?;
                    if self.keys.contains(&key)
                        && self.storage.get(ORG_SECRET_KEYS, multikey).await?.is_none()
                    {
                        writes.push(key_write(&self.keys, &self.secrets, &key)?);
                        expect.push(Expect::Absent {
                            collection: ORG_SECRET_KEYS,
                            key: multikey.clone(),
                        });
                    }
                }
                let local_secret = identity
                    .get(LOCAL_SECRETS_TREE, &org.id)
                    .map_err(|e| IssuerError::internal(&format!("callback secret: {e}")))?;
                if let Some(secret) = local_secret {
                    if !self.has_callback_secret(&org.id).await? {
                        writes.push(self.callback_secret_write(&org.id, &secret)?);
                        expect.push(Expect::Absent {
                            collection: CALLBACK_SECRETS,
                            key: org.id.clone(),
                        });
                    }
                }
                if writes.is_empty() {
                    continue;
                }
                let count = writes.len();
                match self.storage.apply(expect, writes).await {
                    Ok(()) => copied += count,
                    // Another agent copied them meanwhile.
                    Err(BatchError::Conflict) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            if read < PAGE {
                break;
            }
        }
        if copied > 0 {
            tracing::info!(
                secrets = copied,
                "organisation secrets copied from the identity store into the issuer store"
            );
        }
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use lanyard_protocol::credentials::data_integrity;
    use lanyard_protocol::did::{DidDocument, Resolver, StaticResolver};
    use lanyard_protocol::didcomm::{DidComm, DidCommError, Message};
    use lanyard_protocol::keys::KeyRing;
    use lanyard_protocol::protocols::trust_ping;
    use serde_json::json;

    use super::*;
    use crate::issuer::customers::Status;
    use crate::issuer::outbox::tests::phone_did;
    use crate::issuer::store::SledIssuerStorage;
    use crate::mediator::{Outcome, Refusal};
    use crate::router::DidCommRouter;
    use crate::testing::{Parts, ISSUER_STORE_KEY};

    type Shared = Arc<SledIssuerStorage>;

    fn shared_storage(dir: &std::path::Path) -> Shared {
        Arc::new(
            SledIssuerStorage::open(&dir.join("issuer"), Duration::ZERO, &ISSUER_STORE_KEY)
                .unwrap(),
        )
    }

    /// An issuer on `storage` with a key ring of its own and nothing beside it.
    fn bare_issuer(storage: &Shared) -> Issuer<Shared> {
        Issuer::new(
            storage.clone(),
            Arc::new(KeyRing::new()),
            &ISSUER_STORE_KEY,
            "http://agent.test".into(),
        )
    }

    #[tokio::test]
    async fn an_organisation_made_by_one_agent_is_served_by_another_on_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let storage = shared_storage(dir.path());
        let a = Parts::over(&dir.path().join("a"), storage.clone());
        let b = Parts::over(&dir.path().join("b"), storage.clone());
        let (org, api_key) = a.issuer.create_org("Acme").await.unwrap();
        // The invitation goes into B's invitation store (per agent on sled; shared on
        // PostgreSQL), made with the organisation as A gave it.
        let (customer, _) = b
            .issuer
            .onboard(
                &org,
                &json!({ "name": "Ada", "medium": "email", "email": "ada@example.com" }),
            )
            .await
            .unwrap();
        // B's key ring holds none of the organisation's keys (only its own mediator's).
        assert!(!b.issuer.keys().contains(&org.agreement_key));
        assert!(!b.issuer.keys().contains(&org.signing_key));

        // A phone answers the invitation; the envelope reaches agent B.
        let (phone, packed) = crate::issuer::outbox::tests::connecting_ping(
            &org.didcomm_did,
            &customer.invitation_id,
            "http://elsewhere.test/didcomm",
        )
        .await;
        let b_issuer = Arc::new(b.issuer);
        let router = DidCommRouter::new(
            DidComm::new(b.identity.keys.clone(), Resolver::default()),
            b.mediator,
            b_issuer.clone(),
        );
        let outcome = router.handle(&packed).await.unwrap();
        assert!(matches!(outcome, Outcome::Accepted));
        assert!(b_issuer.keys().contains(&org.agreement_key));
        let onboarded = a.issuer.customer(&org, &customer.id).await.unwrap();
        assert_eq!(onboarded.status, Status::Onboarded);
        assert_eq!(onboarded.connection_did.as_deref(), Some(phone.as_str()));

        // A third agent authenticates the organisation and signs a credential with its key.
        let c = bare_issuer(&storage);
        let at_c = c.authenticate(Some(&api_key)).await.unwrap();
        assert_eq!(at_c.didcomm_did, org.didcomm_did);
        assert!(c.keys().contains(&org.signing_key));
        let credential = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"],
            "issuer": org.issuer_did,
            "credentialSubject": { "id": phone, "name": "Ada" },
        });
        let signed = c
            .sign_credential(&at_c, &json!({ "credential": credential }))
            .unwrap();
        let document: DidDocument = serde_json::from_value(a.issuer.did_document(&org)).unwrap();
        let resolver = StaticResolver::new(vec![document]);
        data_integrity::verify(&signed, &resolver, "assertionMethod")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_envelope_for_a_key_no_organisation_has_costs_a_lookup_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = shared_storage(dir.path());
        let b = Parts::over(&dir.path().join("b"), storage.clone());
        let before = storage
            .scan_after(ORG_SECRET_KEYS, "", None, 10)
            .await
            .unwrap();
        let ring = Arc::new(KeyRing::new());
        let (phone, stranger) = (
            phone_did(&ring, "http://elsewhere.test/didcomm"),
            phone_did(&KeyRing::new(), "http://agent.test/didcomm"),
        );
        let ping = Message::new(trust_ping::PING, json!({}))
            .from(phone.clone())
            .to([stranger.clone()]);
        let packed = DidComm::new(ring, Resolver::default())
            .pack_authcrypt(&ping, &phone, &[&stranger], false)
            .await
            .unwrap();
        let keys_before = b.identity.keys.public_keys().len();
        let keys = b.identity.keys.clone();
        let router = b.router();
        match router.handle(&packed).await {
            Err(Refusal::Envelope(DidCommError::NotForUs(kids))) => {
                assert!(
                    kids.iter().all(|kid| kid.starts_with(&stranger)),
                    "{kids:?}"
                )
            }
            other => panic!("not refused as not for us: {:?}", other.map(|_| ())),
        }
        assert_eq!(
            storage
                .scan_after(ORG_SECRET_KEYS, "", None, 10)
                .await
                .unwrap(),
            before
        );
        assert_eq!(storage.count(ORGS, "").await.unwrap(), 0);
        assert_eq!(keys.public_keys().len(), keys_before, "no key was loaded");
    }

    #[tokio::test]
    async fn secrets_kept_in_an_old_identity_store_move_to_the_issuer_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let storage = shared_storage(dir.path());
        let old = Parts::over(&dir.path().join("old"), storage.clone());
        let (org, api_key) = old.issuer.create_org("Acme").await.unwrap();
        old.issuer
            .set_callback(&org, &json!({ "url": "https://hooks.example.com/lanyard" }))
            .await
            .unwrap();
        let secret = old
            .issuer
            .callback_secret(&org.record.id)
            .await
            .unwrap()
            .unwrap();
        // The folder as an earlier version left it: the secrets in the identity store only.
        let identity = old.identity.store.as_ref().unwrap();
        identity
            .save_key(&old.identity.keys, &org.signing_key)
            .unwrap();
        identity
            .save_key(&old.identity.keys, &org.agreement_key)
            .unwrap();
        identity
            .put(LOCAL_SECRETS_TREE, &org.record.id, &secret)
            .unwrap();
        storage
            .apply(
                vec![],
                vec![
                    Write::delete(ORG_SECRET_KEYS, multikey_encode(&org.signing_key)),
                    Write::delete(ORG_SECRET_KEYS, multikey_encode(&org.agreement_key)),
                    Write::delete(CALLBACK_SECRETS, &org.record.id),
                ],
            )
            .await
            .unwrap();
        let elsewhere = bare_issuer(&storage);
        let refused = elsewhere.authenticate(Some(&api_key)).await.unwrap_err();
        assert!(refused.to_string().contains("is not stored"), "{refused}");

        assert_eq!(old.issuer.adopt_local_secrets(identity).await.unwrap(), 3);
        assert_eq!(old.issuer.adopt_local_secrets(identity).await.unwrap(), 0);

        let elsewhere = bare_issuer(&storage);
        let at = elsewhere.authenticate(Some(&api_key)).await.unwrap();
        assert!(elsewhere.keys().contains(&at.signing_key));
        assert!(elsewhere.keys().contains(&at.agreement_key));
        let moved = elsewhere
            .callback_secret(&org.record.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*moved, *secret);
    }

    #[tokio::test]
    async fn the_store_holds_the_secrets_only_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = shared_storage(dir.path());
        let a = bare_issuer(&storage);
        let (org, _) = a.create_org("Acme").await.unwrap();
        let (_, secret) = a
            .set_callback(&org, &json!({ "url": "https://hooks.example.com/lanyard" }))
            .await
            .unwrap();
        let secret = secret.unwrap();
        let stored = storage
            .get(CALLBACK_SECRETS, &org.record.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));
        for key in [&org.signing_key, &org.agreement_key] {
            let plain = a
                .keys()
                .export_sealed(key, &Sealer::new(&[0; 32]), b"")
                .unwrap();
            let sealed = storage
                .get(ORG_SECRET_KEYS, &multikey_encode(key))
                .await
                .unwrap()
                .unwrap();
            // Whatever the sealing, the stored bytes are not the key's plaintext form.
            assert_ne!(sealed, plain);
            let opened = a
                .secrets
                .open("sealed key", multikey_encode(key).as_bytes(), &sealed)
                .unwrap();
            assert!(!sealed.windows(32).any(|w| w == &opened[1..]));
        }
    }
}
