//! The businesses' side of the agent: organisations with API keys, each with an issuer DID
//! (`did:web` under the agent's base URL) and a DIDComm identity (`did:peer:2` served by this
//! agent), and the credential templates of the seed's template API. Its state sits behind
//! [`store::IssuerStorage`], the organisations' secret keys and callback secrets too (sealed,
//! `secrets`), so that every agent sharing the store serves every organisation.

mod api_keys;
mod batches;
mod callbacks;
mod claim;
mod counts;
mod customers;
mod delivery;
mod email;
mod error;
mod inbound;
mod issuance;
mod onboarding;
mod outbox;
pub(crate) mod rate;
mod records;
mod secrets;
mod status_list;
pub mod store;
mod templates;
mod time;
mod verification;

use std::sync::Arc;
use std::time::Duration;

use lanyard_protocol::did::{
    did_peer_2, did_web_from_url, multikey_decode, multikey_encode, PeerDidSpec, PeerService,
};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use lanyard_protocol::net::HttpClient;
use lanyard_protocol::store::Sealer;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use self::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use self::time::now_ms;
use crate::invitations::InvitationStore;
use crate::mediator::QueuePort;

pub use self::api_keys::{ApiKey, MAX_API_KEYS};
pub use self::batches::{
    run_batches, Batch, BatchRow, BatchState, INTERRUPTED, KEPT_BATCHES, MAX_BATCH_CSV_BYTES,
    MAX_RUNNING_BATCHES,
};
pub use self::callbacks::{run as run_callbacks, CallbackConfig, Deliveries, Event};
pub use self::counts::{Counts, Tally};
pub use self::customers::{
    valid_email, AutoIssue, Customer, DeliveryAttempt, EmailTemplate, Medium, NewCustomer, Status,
};
pub use self::delivery::{DeliveryError, Mailer, SmsGateway};
pub use self::email::{
    check_placeholders, preview_json, EmailTemplateSpec, EmailTemplateStorage, InlineImage, Logo,
    RenderedEmail, StoredEmailTemplate, LOGO_CID, MAX_EMAIL_TEMPLATES, MAX_LOGO_BYTES,
    PLACEHOLDERS, PREVIEW_CUSTOMER, QR_CID,
};
pub use self::error::IssuerError;
pub use self::issuance::{rows_from_csv, rows_from_json, MAX_BATCH_ROWS};
pub use self::onboarding::ONBOARDING_GOAL_CODE;
pub use self::outbox::{run_outbox, OutboxCounters};
pub use self::rate::Rate;
pub use self::records::{Connection, CredentialState, IssuedCredential};
pub(crate) use self::templates::camel;
pub use self::templates::{
    json_type, valid_field_name, Template, TemplateSpec, MAX_CUSTOM_FIELDS, STANDARD_FIELDS,
};
pub(crate) use self::time::iso_millis;
pub use self::verification::{
    Verification, VerificationState, MAX_VERIFICATION_WAIT, MAX_VERIFICATION_WAITERS,
};

/// Collections of the issuer store.
const ORGS: &str = "orgs";
const ORG_NAMES: &str = "org_names";
const TEMPLATES: &str = "templates";
const TEMPLATE_IDS: &str = "template_ids";
/// Key agreement key (Multikey) → organisation id: which organisation a message is for.
const ORG_AGREEMENT_KEYS: &str = "org_agreement_keys";
const CUSTOMERS: &str = "customers";
/// Customer id → storage key.
const CUSTOMER_IDS: &str = "customer_ids";
/// Invitation message id → customer storage key.
const CUSTOMER_INVITATIONS: &str = "customer_invitations";

/// An organisation as stored. The API key is kept only as its SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Organisation {
    /// 24 hex digits.
    pub id: String,
    /// Its name, unique case-insensitively.
    pub name: String,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
    /// SHA-256 of the API key's secret part, hex.
    api_key_sha256: String,
    /// Ed25519 (Multikey): signs credentials, authenticates DIDComm.
    pub signing_key: String,
    /// X25519 (Multikey): DIDComm key agreement.
    pub agreement_key: String,
}

/// An organisation with its DIDs, as the agent's current base URL gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct Org {
    /// The stored record.
    pub record: Organisation,
    /// `did:web:<host>:orgs:<id>`: signs credentials and status lists.
    pub issuer_did: String,
    /// The DIDComm identity connections are made with.
    pub didcomm_did: String,
    /// The signing key (Ed25519).
    pub signing_key: PublicKey,
    /// The key agreement key (X25519).
    pub agreement_key: PublicKey,
}

/// A fresh random id of 24 hex digits (96 bits).
pub(crate) fn new_object_id() -> String {
    let mut bytes = [0u8; 12];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bounds on what the issuer side keeps and sends; `config.rs` reads each from a knob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerLimits {
    /// An outbox message not handed to the mediator within this long is dropped.
    pub outbox_ttl: Duration,
    /// Hand-over attempts after which an outbox message is dropped.
    pub outbox_max_attempts: u32,
    /// How often the outbox is swept, and the first wait before a failed hand-over is tried
    /// again (each further wait doubles, up to an hour).
    pub outbox_retry: Duration,
    /// Problem reports answered to senders without a connection, per organisation (they are
    /// never stored: handed to the mediator at once, or not at all).
    pub stranger_answers: Rate,
    /// Invitation emails and SMS sent, per organisation.
    pub invitations_sent: Rate,
    /// How long an agent holds an outbox entry it hands over (several agents on one store):
    /// longer than any hand-over takes; an entry whose agent died meanwhile is taken by
    /// another once this ran out.
    pub outbox_lease: Duration,
}

impl Default for IssuerLimits {
    fn default() -> Self {
        IssuerLimits {
            outbox_ttl: Duration::from_secs(7 * 24 * 3600),
            outbox_max_attempts: 100,
            outbox_retry: Duration::from_secs(2),
            stranger_answers: Rate {
                per_period: 60,
                period: Duration::from_secs(60),
                burst: 20,
            },
            invitations_sent: Rate {
                per_period: 1000,
                period: Duration::from_secs(3600),
                burst: 100,
            },
            outbox_lease: Duration::from_secs(60),
        }
    }
}

/// The issuer side's services over its storage.
pub struct Issuer<S> {
    storage: S,
    keys: Arc<KeyRing>,
    /// Packs what the outbox hands to the mediator; one resolver cache for every hand-over.
    packer: lanyard_protocol::didcomm::DidComm<lanyard_protocol::did::Resolver>,
    /// Seals the organisations' secrets (keys, callback secrets) kept in `storage`.
    secrets: Sealer,
    public_url: String,
    /// Where its messages to phones are queued: the mediator beside it.
    queue: Option<Arc<dyn QueuePort>>,
    /// Where its invitations are hosted.
    invitations: Option<Arc<dyn InvitationStore>>,
    /// The app's custom URL scheme, for deep links.
    scheme: String,
    mailer: Option<delivery::Mailer>,
    sms: Option<delivery::SmsGateway>,
    /// Wakes the callback deliveries when an event is committed.
    callbacks: Arc<tokio::sync::Notify>,
    /// Resolves the template issuer's did:web for verifications (through `http`).
    resolver: lanyard_protocol::did::HttpResolver,
    /// The hardened client: status lists, did:web documents.
    http: HttpClient,
    /// Largest status list fetched.
    status_list_max_bytes: usize,
    limits: IssuerLimits,
    /// Answers to strangers, by organisation.
    stranger_answers: rate::RateLimiter,
    /// Invitation emails and SMS, by organisation.
    invitations_sent: rate::RateLimiter,
    outbox_counters: OutboxCounters,
    /// Each organisation's signed status list with the revision it was signed at.
    status_lists: status_list::StatusListCache,
    /// Names this issuer on the leases it takes ([`claim`]): unique per process, so that
    /// several agents on one store (and an agent restarted) tell their leases apart.
    agent_id: String,
    /// Wakes this agent's batch worker when a batch is created here.
    batch_waker: Arc<tokio::sync::Notify>,
    /// Wakes those waiting for a verification's outcome when this agent records one.
    verification_waker: Arc<tokio::sync::Notify>,
    /// Waits for a verification's outcome at once ([`Issuer::wait_for_verification`]); a
    /// waiter beyond them is answered at once with what is stored.
    verification_waiters: Arc<tokio::sync::Semaphore>,
}

impl<S: IssuerStorage> Issuer<S> {
    /// An issuer that can manage organisations and templates; [`Issuer::with_mediator`] and
    /// [`Issuer::with_transports`] add what onboarding and issuance need. `storage_key` is the
    /// issuer store's data key (the organisations' secrets are sealed under a key derived from
    /// it); `keys` is the agent's key ring, the one its DIDComm router unpacks with, which the
    /// issuer fills with an organisation's keys from `storage` when it first needs them.
    pub fn new(storage: S, keys: Arc<KeyRing>, storage_key: &[u8; 32], public_url: String) -> Self {
        // The strict policy; [`Issuer::with_network`] sets the configured one.
        let http = HttpClient::strict().expect("the HTTP client (rustls, built-in roots) builds");
        let packer = lanyard_protocol::didcomm::DidComm::new(
            keys.clone(),
            lanyard_protocol::did::Resolver::default(),
        );
        Issuer {
            storage,
            keys,
            packer,
            secrets: secrets::secrets_sealer(storage_key),
            public_url,
            queue: None,
            invitations: None,
            scheme: "lanyard".into(),
            mailer: None,
            sms: None,
            callbacks: Arc::new(tokio::sync::Notify::new()),
            resolver: lanyard_protocol::did::HttpResolver::new(http.clone()),
            http,
            status_list_max_bytes: 1 << 20,
            stranger_answers: rate::RateLimiter::new(IssuerLimits::default().stranger_answers),
            invitations_sent: rate::RateLimiter::new(IssuerLimits::default().invitations_sent),
            limits: IssuerLimits::default(),
            outbox_counters: OutboxCounters::default(),
            status_lists: Default::default(),
            agent_id: claim::agent_id(&new_object_id(), &new_object_id()),
            batch_waker: Arc::new(tokio::sync::Notify::new()),
            verification_waker: Arc::new(tokio::sync::Notify::new()),
            verification_waiters: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFICATION_WAITERS)),
        }
    }

    /// Names this agent `stable` across restarts (its data folder's id), so that after a
    /// crash it takes back at once the outbox entries and callback events its earlier process
    /// had leased, instead of waiting for the leases to run out. Without it every process is
    /// a new agent.
    pub fn with_agent_name(mut self, stable: &str) -> Self {
        self.agent_id = claim::agent_id(stable, &new_object_id());
        self
    }

    /// Fetches with `client` (its policy: what may be reached, timeouts) and reads status
    /// lists of at most `status_list_max_bytes`.
    pub fn with_network(mut self, client: HttpClient, status_list_max_bytes: usize) -> Self {
        self.resolver = lanyard_protocol::did::HttpResolver::new(client.clone());
        self.http = client;
        self.status_list_max_bytes = status_list_max_bytes;
        self
    }

    /// The hardened client this issuer fetches with.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Sets the outbox's bounds and the rate limits.
    pub fn with_limits(mut self, limits: IssuerLimits) -> Self {
        self.stranger_answers = rate::RateLimiter::new(limits.stranger_answers);
        self.invitations_sent = rate::RateLimiter::new(limits.invitations_sent);
        self.limits = limits;
        self
    }

    /// The outbox's bounds and the rate limits in force.
    pub fn limits(&self) -> &IssuerLimits {
        &self.limits
    }

    /// What the outbox dropped and which strangers went unanswered, since start.
    pub fn outbox_counters(&self) -> &OutboxCounters {
        &self.outbox_counters
    }

    /// What wakes the callback deliveries ([`callbacks::run`]).
    pub fn callback_waker(&self) -> Arc<tokio::sync::Notify> {
        self.callbacks.clone()
    }

    /// Attaches the mediator's queue (where messages to phones go), the invitation store and
    /// the app's deep-link scheme.
    pub fn with_mediator(
        mut self,
        queue: Arc<dyn QueuePort>,
        invitations: Arc<dyn InvitationStore>,
        scheme: &str,
    ) -> Self {
        self.queue = Some(queue);
        self.invitations = Some(invitations);
        self.scheme = scheme.to_string();
        self
    }

    /// Attaches the email and SMS transports (each optional).
    pub fn with_transports(
        mut self,
        mailer: Option<delivery::Mailer>,
        sms: Option<delivery::SmsGateway>,
    ) -> Self {
        self.mailer = mailer;
        self.sms = sms;
        self
    }

    /// The invitation store (set by [`Issuer::with_mediator`]).
    fn invitations(&self) -> Result<&Arc<dyn InvitationStore>, IssuerError> {
        self.invitations
            .as_ref()
            .ok_or_else(|| IssuerError::internal("this issuer runs without a mediator"))
    }

    /// The mediator's queue (set by [`Issuer::with_mediator`]).
    fn queue(&self) -> Result<&Arc<dyn QueuePort>, IssuerError> {
        self.queue
            .as_ref()
            .ok_or_else(|| IssuerError::internal("this issuer runs without a mediator"))
    }

    /// The agent's public base URL the DIDs and links are made from.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The storage the issuer side keeps its state in.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The key ring holding the organisations' secret keys.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// An organisation's record with its DIDs; its keys are loaded from the store into the
    /// key ring when the ring lacks them.
    async fn org_of(&self, record: Organisation) -> Result<Org, IssuerError> {
        let signing_key = multikey_decode(&record.signing_key)
            .map_err(|e| IssuerError::internal(&format!("organisation {}: {e}", record.id)))?;
        let agreement_key = multikey_decode(&record.agreement_key)
            .map_err(|e| IssuerError::internal(&format!("organisation {}: {e}", record.id)))?;
        self.ensure_key(&signing_key).await?;
        self.ensure_key(&agreement_key).await?;
        let issuer_did = did_web_from_url(&format!("{}/orgs/{}", self.public_url, record.id))
            .map_err(|e| IssuerError::internal(&e.to_string()))?;
        let didcomm_did = did_peer_2(&PeerDidSpec {
            authentication: vec![signing_key],
            key_agreement: vec![agreement_key],
            services: vec![PeerService {
                uri: format!("{}/didcomm", self.public_url),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        });
        Ok(Org {
            record,
            issuer_did,
            didcomm_did,
            signing_key,
            agreement_key,
        })
    }

    /// Creates an organisation; returns it and its API key, which is shown this once.
    pub async fn create_org(&self, name: &str) -> Result<(Org, String), IssuerError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(IssuerError::field(
                "name",
                "must be 1 to 200 characters without control characters",
            ));
        }
        let id = new_object_id();
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let secret = lanyard_protocol::encoding::b64u_encode(secret);
        let api_key = format!("lk_{id}_{secret}");
        let signing = self.keys.generate(KeyType::Ed25519);
        let agreement = self.keys.generate(KeyType::X25519);
        let sealed = secrets::key_write(&self.keys, &self.secrets, &signing).and_then(|s| {
            Ok((
                s,
                secrets::key_write(&self.keys, &self.secrets, &agreement)?,
            ))
        });
        let (sealed_signing, sealed_agreement) = match sealed {
            Ok(sealed) => sealed,
            Err(error) => {
                self.keys.remove(&signing);
                self.keys.remove(&agreement);
                return Err(error);
            }
        };
        let record = Organisation {
            id: id.clone(),
            name: name.to_string(),
            created_ms: now_ms(),
            api_key_sha256: sha256_hex(secret.as_bytes()),
            signing_key: multikey_encode(&signing),
            agreement_key: multikey_encode(&agreement),
        };
        let name_key = name.to_lowercase();
        let applied = self
            .storage
            .apply(
                vec![Expect::Absent {
                    collection: ORG_NAMES,
                    key: name_key.clone(),
                }],
                vec![
                    Write::put(ORGS, &id, &record)?,
                    Write::put(ORG_NAMES, name_key, &id)?,
                    Write::put(ORG_AGREEMENT_KEYS, &record.agreement_key, &id)?,
                    sealed_signing,
                    sealed_agreement,
                ],
            )
            .await;
        if let Err(error) = applied {
            // The keys of an organisation that was not created go again.
            for key in [&signing, &agreement] {
                self.keys.remove(key);
            }
            return Err(match error {
                BatchError::Conflict => {
                    IssuerError::conflict(&format!("an organisation named {name:?} exists already"))
                }
                other => other.into(),
            });
        }
        tracing::info!(org = %id, "organisation created");
        Ok((self.org_of(record).await?, api_key))
    }

    /// The organisation an `x-api-key` belongs to: its first key or any other it made
    /// ([`Issuer::create_api_key`]), unless revoked.
    pub async fn authenticate(&self, api_key: Option<&str>) -> Result<Org, IssuerError> {
        use subtle::ConstantTimeEq;
        let api_key = api_key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| IssuerError::unauthorised("the x-api-key header is missing"))?;
        let invalid = || IssuerError::unauthorised("the x-api-key is not valid");
        let (id, secret) = api_key
            .strip_prefix("lk_")
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, _)| id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(invalid)?;
        let record: Option<Organisation> = self.storage.get_json(ORGS, id).await?;
        let given = sha256_hex(secret.as_bytes());
        // A key made in the console, or the first key's tombstone, is found by its hash.
        let matches = match self.api_key_valid(id, &given).await? {
            Some(valid) => valid,
            None => {
                // Compare against something even for an unknown id, so timing says nothing.
                let expected = record.as_ref().map_or_else(
                    || sha256_hex(b"no such organisation"),
                    |r| r.api_key_sha256.clone(),
                );
                bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
            }
        };
        match record {
            Some(record) if matches => self.org_of(record).await,
            _ => Err(invalid()),
        }
    }

    /// An organisation by id (for its public DID document).
    pub async fn org(&self, id: &str) -> Result<Option<Org>, IssuerError> {
        match self.storage.get_json::<Organisation>(ORGS, id).await? {
            Some(record) => Ok(Some(self.org_of(record).await?)),
            None => Ok(None),
        }
    }

    /// The `did:web` document of an organisation's issuer DID.
    pub fn did_document(&self, org: &Org) -> Value {
        let key_id = format!("{}#key-1", org.issuer_did);
        json!({
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/multikey/v1"
            ],
            "id": org.issuer_did,
            "verificationMethod": [{
                "id": key_id,
                "type": "Multikey",
                "controller": org.issuer_did,
                "publicKeyMultibase": org.record.signing_key,
            }],
            "authentication": [key_id],
            "assertionMethod": [key_id],
        })
    }
}
