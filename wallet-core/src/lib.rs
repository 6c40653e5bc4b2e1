//! The customer's wallet (DESIGN §3): one [`Wallet`] that the apps and the `wallet` CLI call.
//! It accepts invitations in every form, keeps mediation with the agent, makes a pairwise
//! `did:peer:2` per connection routed through the mediator, picks up and processes what waits
//! (offers, credentials, deletion notices, presentation results), verifies credentials before
//! it stores them, answers verifiers, and tells the app through a [`WalletListener`].
//!
//! State lives in the encrypted [`Store`]; each step writes before it acknowledges, and every
//! handler is idempotent, so a crash at any point is repaired by the next `sync`: a message is
//! acknowledged to the mediator only after what it changed is stored.

#![warn(missing_docs, unreachable_pub)]

mod error;
mod invitation;
mod live;
mod process;
mod push;
mod records;

#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

pub use self::error::WalletError;
/// The invitation reader behind [`Wallet::accept_invitation`], for the fuzz targets in `fuzz/`;
/// not part of the API.
#[doc(hidden)]
pub use self::invitation::{read as read_invitation, Source as InvitationSource};
pub use self::live::Live;
pub use self::push::PushService;
pub use self::records::{
    Accepted, Connection, CredentialField, OfferRecord, OfferState, RequestRecord, RequestState,
    StoredCredential, SyncReport, WalletEvent,
};
use lanyard_protocol::did::{did_peer_2, resolve_local, HttpResolver, PeerDidSpec, PeerService};
use lanyard_protocol::didcomm::{DidComm, Message, ENCRYPTED_TYP};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use lanyard_protocol::net::{HttpClient, NetError, NetPolicy, Request};
use lanyard_protocol::protocols::coordinate_mediation::{self as mediation, Action, UpdateResult};
/// The Out-of-Band 2.0 invitation message type ([`lanyard_protocol::protocols::out_of_band`]).
pub use lanyard_protocol::protocols::out_of_band::INVITATION as OOB_INVITATION;
use lanyard_protocol::protocols::pickup;
use lanyard_protocol::protocols::{
    discover_features, present_proof, report_problem, trust_ping, ProtocolError,
};
use lanyard_protocol::store::{Store, StoreError, Unlock};

/// Trees of the wallet's store.
const META: &str = "wallet";
const CONNECTIONS: &str = "connections";
const INVITATIONS: &str = "invitations";
const OFFERS: &str = "offers";
const CREDENTIALS: &str = "credentials";
const REQUESTS: &str = "requests";

/// Messages picked up per delivery request.
const PICKUP_BATCH: u64 = 50;
/// Largest answer to the short-URL and mediator-document fetches.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Hears what happens in the wallet (implemented by the app, in Swift or Kotlin).
pub trait WalletListener: Send + Sync {
    /// Called once for each event, as it happens.
    fn on_event(&self, event: WalletEvent);
}

/// The mediator this wallet uses, remembered after the first grant.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Mediation {
    /// The agent's base URL.
    agent: String,
    /// The mediator's DID, which the connection DIDs name as their service.
    mediator_did: String,
    /// The DID this wallet talks to the mediator with.
    my_did: String,
    /// The Coordinate Mediation version the mediator granted in (3.0 when the record
    /// predates the choice).
    #[serde(default = "coordinate_v3")]
    coordinate: mediation::Version,
    /// The Message Pickup version this wallet picks up in (3.0 when the record predates the
    /// choice).
    #[serde(default = "pickup_v3")]
    pickup: pickup::Version,
}

fn coordinate_v3() -> mediation::Version {
    mediation::Version::V3
}

fn pickup_v3() -> pickup::Version {
    pickup::Version::V3
}

/// The Coordinate Mediation and Pickup versions to speak with a mediator, from its
/// `disclose` (Discover Features 2.0, the way Coordinate Mediation 2.0 names for finding a
/// mediator's protocols): Coordinate Mediation 3.0 when disclosed, else 2.0 when disclosed;
/// Pickup 3.0 when disclosed, else 4.0 when disclosed; 3.0 of each when the mediator
/// disclosed nothing of either (it may still speak them).
fn versions_from(
    disclose: Option<&discover_features::Disclose>,
) -> (mediation::Version, pickup::Version) {
    let disclosed = |piuri: &str| {
        disclose.is_some_and(|d| {
            d.disclosures
                .iter()
                .any(|f| f.feature_type == discover_features::PROTOCOL && f.id == piuri)
        })
    };
    let coordinate = [mediation::Version::V3, mediation::Version::V2]
        .into_iter()
        .find(|v| disclosed(v.piuri()))
        .unwrap_or(mediation::Version::V3);
    let pickup = [pickup::Version::V3, pickup::Version::V4]
        .into_iter()
        .find(|v| disclosed(v.piuri()))
        .unwrap_or(pickup::Version::V3);
    (coordinate, pickup)
}

/// Whether `message` is a Pickup `delivery` (of either version).
fn is_delivery(message: &Message) -> bool {
    matches!(
        pickup::Version::classify(&message.type_),
        Some((_, pickup::Kind::Delivery))
    )
}

/// A customer's wallet over an encrypted store.
pub struct Wallet {
    store: Store,
    keys: Arc<KeyRing>,
    didcomm: DidComm<Arc<HttpResolver>>,
    resolver: Arc<HttpResolver>,
    http: HttpClient,
    listener: Mutex<Option<Arc<dyn WalletListener>>>,
    auto_accept: std::sync::atomic::AtomicBool,
    /// One sync (or accept) at a time changes state.
    busy: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A [`NetError`] as the wallet's error: what no retry can fix is [`WalletError::NotAllowed`],
/// the rest [`WalletError::Unreachable`] (tried again later).
fn net_error(error: NetError) -> WalletError {
    match error {
        NetError::Unreachable { url, reason } => {
            WalletError::Unreachable(format!("{url} ({reason})"))
        }
        NetError::Timeout { url, seconds } => {
            WalletError::Unreachable(format!("{url} (no answer within {seconds} s)"))
        }
        NetError::Dns { host, .. } => {
            WalletError::Unreachable(format!("{host} (the name could not be resolved)"))
        }
        other => WalletError::NotAllowed(other),
    }
}

fn response_ok(status: u16) -> bool {
    (200..300).contains(&status)
}

/// How a [`Wallet`] is opened: its folder, how its store is unlocked, and what its HTTP
/// client may reach (the strict [`NetPolicy::default`] unless [`WalletBuilder::network`]
/// says otherwise).
pub struct WalletBuilder {
    dir: PathBuf,
    unlock: Unlock,
    network: NetPolicy,
}

impl std::fmt::Debug for WalletBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletBuilder")
            .field("dir", &self.dir)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}

impl WalletBuilder {
    /// What the wallet's HTTP client may reach (e.g. [`NetPolicy::loopback`] for an agent
    /// on this machine in development and tests).
    pub fn network(mut self, policy: NetPolicy) -> WalletBuilder {
        self.network = policy;
        self
    }

    /// Opens the wallet (creating it).
    pub fn open(self) -> Result<Wallet, WalletError> {
        let store = Store::open(&self.dir, self.unlock)?;
        let keys = Arc::new(KeyRing::new());
        store.load_keys(&keys)?;
        let http = HttpClient::new(self.network).map_err(net_error)?;
        let resolver = Arc::new(HttpResolver::new(http.clone()));
        Ok(Wallet {
            didcomm: DidComm::new(keys.clone(), resolver.clone()),
            resolver,
            store,
            keys,
            http,
            listener: Mutex::new(None),
            auto_accept: std::sync::atomic::AtomicBool::new(false),
            busy: tokio::sync::Mutex::new(()),
        })
    }
}

impl Wallet {
    /// How to open the wallet in `dir`, unlocked by a passphrase or the platform's key
    /// protector; [`WalletBuilder::open`] opens it.
    pub fn builder(dir: &Path, unlock: Unlock) -> WalletBuilder {
        WalletBuilder {
            dir: dir.to_path_buf(),
            unlock,
            network: NetPolicy::default(),
        }
    }

    /// Opens the wallet in `dir` (creating it) with the strict network policy.
    pub fn open(dir: &Path, unlock: Unlock) -> Result<Wallet, WalletError> {
        Wallet::builder(dir, unlock).open()
    }

    /// Sets who hears the wallet's events.
    pub fn set_listener(&self, listener: Option<Arc<dyn WalletListener>>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Whether offers are accepted as they arrive (otherwise they wait for the customer).
    pub fn set_auto_accept(&self, on: bool) {
        self.auto_accept
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn emit(&self, event: WalletEvent) {
        tracing::debug!(?event, "wallet event");
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener.on_event(event);
        }
    }

    /// A fresh did:peer:2 whose keys are saved in the store; `service` is the mediator's DID
    /// for connection DIDs, none for the DID the wallet talks to the mediator with.
    fn new_did(&self, service: Option<&str>) -> Result<String, WalletError> {
        let signing = self.keys.generate(KeyType::Ed25519);
        let agreement = self.keys.generate(KeyType::X25519);
        self.store.save_key(&self.keys, &signing)?;
        self.store.save_key(&self.keys, &agreement)?;
        Ok(did_peer_2(&PeerDidSpec {
            authentication: vec![signing],
            key_agreement: vec![agreement],
            services: service
                .map(|uri| PeerService {
                    uri: uri.to_string(),
                    routing_keys: vec![],
                    accept: vec!["didcomm/v2".into()],
                })
                .into_iter()
                .collect(),
        }))
    }

    /// The authentication key of one of this wallet's DIDs and its verification method id.
    fn signing_key(&self, did: &str) -> Result<(PublicKey, String), WalletError> {
        let doc = resolve_local(did).map_err(|e| WalletError::BadCredential(e.to_string()))?;
        doc.authentication_keys()
            .iter()
            .find(|(_, key)| self.keys.contains(key))
            .map(|(id, key)| (*key, id.clone()))
            .ok_or_else(|| WalletError::NotFound {
                what: "key of the DID",
                id: did.to_string(),
            })
    }

    /// Posts a packed message to `endpoint`; returns the answer's body when there is one.
    async fn post(&self, endpoint: &str, packed: String) -> Result<Option<String>, WalletError> {
        let response = self
            .http
            .send(
                Request::post(endpoint, ENCRYPTED_TYP, packed.into_bytes())
                    .max_bytes(lanyard_protocol::didcomm::DEFAULT_MAX_MESSAGE_BYTES),
            )
            .await
            .map_err(net_error)?;
        let status = response.status;
        let text = String::from_utf8(response.body).map_err(|_| {
            WalletError::Refused(endpoint.to_string(), "the answer is not UTF-8".into())
        })?;
        if !response_ok(status) {
            let reason = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("comment").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(WalletError::Refused(endpoint.to_string(), reason));
        }
        Ok((status == 200 && !text.is_empty()).then_some(text))
    }

    /// Sends `message` from `from` to `to`, wherever `to`'s DID document says (through its
    /// mediator if it has one).
    async fn send(&self, from: &str, to: &str, message: Message) -> Result<(), WalletError> {
        let message = message.from(from.to_string()).to([to.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(from), to, false)
            .await?;
        let endpoint = packed
            .endpoint
            .ok_or_else(|| WalletError::Unreachable(format!("{to} (its DID names no endpoint)")))?;
        self.post(&endpoint, packed.message).await?;
        Ok(())
    }

    /// Sends `message` to the mediator (authcrypted) and reads its answer on the same
    /// connection; a problem report is the mediator's refusal.
    async fn ask_mediator(
        &self,
        mediation: &Mediation,
        message: Message,
    ) -> Result<Message, WalletError> {
        let mut message = message
            .from(mediation.my_did.clone())
            .to([mediation.mediator_did.clone()]);
        message.extra.insert("return_route".into(), json!("all"));
        let packed = self
            .didcomm
            .pack_authcrypt(
                &message,
                &mediation.my_did,
                &[&mediation.mediator_did],
                false,
            )
            .await?;
        let answer = self
            .post(&format!("{}/didcomm", mediation.agent), packed)
            .await?
            .ok_or_else(|| WalletError::Refused(mediation.agent.clone(), "no answer".into()))?;
        let unpacked = self.didcomm.unpack(&answer).await?;
        if unpacked.message.type_ == report_problem::PROBLEM_REPORT {
            return Err(WalletError::Refused(
                mediation.agent.clone(),
                report_problem::comment_of(&unpacked.message)
                    .unwrap_or("a problem")
                    .to_string(),
            ));
        }
        Ok(unpacked.message)
    }

    fn mediation(&self) -> Result<Option<Mediation>, WalletError> {
        Ok(self.store.get_json(META, "mediation")?)
    }

    /// The mediation with the agent at `agent`, asked for on first use and remembered. The
    /// request names the invitation being answered (`pthid`), so a mediator that admits only
    /// wallets that came through one of its invitations grants it.
    async fn mediation_with(
        &self,
        agent: &str,
        invitation_id: &str,
    ) -> Result<Mediation, WalletError> {
        if let Some(mediation) = self.mediation()? {
            return Ok(mediation);
        }
        let url = format!("{agent}/mediator");
        let response = self
            .http
            .send(
                Request::get(&url)
                    .header("accept", "application/json")
                    .max_bytes(MAX_DOCUMENT_BYTES),
            )
            .await
            .map_err(net_error)?;
        if !response_ok(response.status) {
            return Err(WalletError::Refused(
                agent.to_string(),
                format!("{url} answered HTTP {}", response.status),
            ));
        }
        let info: Value = serde_json::from_slice(&response.body)
            .map_err(|_| WalletError::Refused(agent.to_string(), format!("{url} is not JSON")))?;
        let mediator_did = info["did"]
            .as_str()
            .filter(|d| d.starts_with("did:"))
            .ok_or_else(|| WalletError::Refused(agent.to_string(), "no mediator DID".into()))?
            .to_string();
        let mut mediation = Mediation {
            agent: agent.to_string(),
            mediator_did,
            my_did: self.new_did(None)?,
            coordinate: mediation::Version::V3,
            pickup: pickup::Version::V3,
        };
        (mediation.coordinate, mediation.pickup) = self.mediator_versions(&mediation).await?;
        let request =
            mediation::mediate_request_message(mediation.coordinate, &mediation::MediateRequest)
                .pthid(invitation_id);
        let grant = self.ask_mediator(&mediation, request).await?;
        mediation::parse_mediate_grant(&grant).map_err(|error| {
            let why = match error {
                ProtocolError::WrongType { type_, .. } => {
                    format!("mediation was answered with {type_}")
                }
                other => other.to_string(),
            };
            WalletError::Refused(agent.to_string(), why)
        })?;
        self.store.put_json(META, "mediation", &mediation)?;
        Ok(mediation)
    }

    /// The mediation and pickup versions the mediator speaks, asked with Discover Features:
    /// see [`versions_from`]. A mediator that refuses the query (a problem report) is asked
    /// in 3.0.
    async fn mediator_versions(
        &self,
        mediation: &Mediation,
    ) -> Result<(mediation::Version, pickup::Version), WalletError> {
        let protocol = |pattern: &str| discover_features::Query {
            feature_type: discover_features::PROTOCOL.to_string(),
            pattern: pattern.to_string(),
        };
        let queries = discover_features::queries_message(&discover_features::Queries {
            queries: vec![
                protocol("https://didcomm.org/coordinate-mediation/*"),
                protocol("https://didcomm.org/messagepickup/*"),
                protocol("https://didcomm.org/message-pickup/*"),
            ],
        });
        let disclose = match self.ask_mediator(mediation, queries).await {
            Ok(answer) => discover_features::parse_disclose(&answer).ok(),
            Err(WalletError::Refused(..)) => None,
            Err(other) => return Err(other),
        };
        Ok(versions_from(disclose.as_ref()))
    }

    /// The agent base URL behind a DID's DIDComm endpoint (`<base>/didcomm`).
    async fn agent_of(&self, did: &str) -> Result<String, WalletError> {
        use lanyard_protocol::did::DidResolver;
        let doc = self
            .resolver
            .resolve(did)
            .await
            .map_err(|e| WalletError::InvalidInvitation(e.to_string()))?;
        let service = doc
            .didcomm_services()
            .into_iter()
            .find(|s| s.uri.starts_with("http"))
            .ok_or_else(|| {
                WalletError::InvalidInvitation("the inviter names no HTTP endpoint".into())
            })?;
        Ok(service
            .uri
            .trim_end_matches('/')
            .trim_end_matches("/didcomm")
            .to_string())
    }

    /// Accepts an invitation from a QR code, a link or the raw JSON: connects to the inviter
    /// (once per invitation), or records the presentation request it carries.
    pub async fn accept_invitation(&self, text: &str) -> Result<Accepted, WalletError> {
        let short_url = match invitation::read(text)? {
            invitation::Source::Inline(message) => {
                return self.accept_message(*message, None).await;
            }
            invitation::Source::Fetch(url) => url,
        };
        // A short URL this wallet answered before (single-use, so the agent now says "used").
        if let Some(id) = self.store.get_json::<String>(INVITATIONS, &short_url)? {
            if let Some(connection) = self.store.get_json::<Connection>(CONNECTIONS, &id)? {
                return Ok(Accepted::Connection(connection));
            }
        }
        let message = self.fetch_invitation(&short_url).await?;
        self.accept_message(message, Some(&short_url)).await
    }

    async fn accept_message(
        &self,
        message: Message,
        short_url: Option<&str>,
    ) -> Result<Accepted, WalletError> {
        let invitation = invitation::parse(&message)?;
        let _busy = self.busy.lock().await;
        let inviter = invitation.from.clone();
        // A verifier's request: no connection, just the request to answer.
        for attached in &invitation.attachments {
            let Ok(message) = serde_json::from_value::<Message>(attached.clone()) else {
                continue;
            };
            if message.type_ == present_proof::REQUEST {
                let record = self
                    .record_request(&inviter, &message, Some(&invitation))
                    .await?;
                return Ok(Accepted::PresentationRequest(record));
            }
        }
        if let Some(id) = self.store.get_json::<String>(INVITATIONS, &invitation.id)? {
            if let Some(connection) = self.store.get_json::<Connection>(CONNECTIONS, &id)? {
                return Ok(Accepted::Connection(connection));
            }
        }
        let agent = self.agent_of(&inviter).await?;
        let mediation = self.mediation_with(&agent, &invitation.id).await?;
        let my_did = self.new_did(Some(&mediation.mediator_did))?;
        let update = mediation::recipient_update_message(
            mediation.coordinate,
            &mediation::RecipientUpdate {
                updates: vec![mediation::Update {
                    recipient_did: my_did.clone(),
                    action: Action::Add,
                }],
            },
        );
        let answer = self.ask_mediator(&mediation, update).await?;
        let taken = mediation::parse_recipient_update_response(&answer)
            .is_ok_and(|r| r.updated.first().map(|u| u.result) == Some(UpdateResult::Success));
        if !taken {
            return Err(WalletError::Refused(
                agent,
                "the mediator did not take the new connection's DID".into(),
            ));
        }
        let label = invitation.label.clone().unwrap_or_else(|| inviter.clone());
        let connection = Connection {
            id: uuid::Uuid::new_v4().to_string(),
            my_did: my_did.clone(),
            their_did: inviter.clone(),
            label,
            invitation_id: invitation.id.clone(),
            goal: invitation.goal.clone(),
            created_at: lanyard_protocol::didcomm::now(),
        };
        // Stored before the first message, so a crash leaves a connection to retry, not a
        // spent invitation with nothing to show.
        self.store
            .put_json(CONNECTIONS, &connection.id, &connection)?;
        self.store
            .put_json(INVITATIONS, &invitation.id, &connection.id)?;
        if let Some(url) = short_url {
            self.store.put_json(INVITATIONS, url, &connection.id)?;
        }
        let hello = trust_ping::ping_message(&trust_ping::Ping {
            response_requested: true,
        })
        .pthid(invitation.id.clone());
        if let Err(error) = self.send(&my_did, &inviter, hello).await {
            self.store.delete(CONNECTIONS, &connection.id)?;
            self.store.delete(INVITATIONS, &invitation.id)?;
            if let Some(url) = short_url {
                self.store.delete(INVITATIONS, url)?;
            }
            return Err(error);
        }
        tracing::info!(connection = %connection.id, "connected");
        self.emit(WalletEvent::ConnectionEstablished {
            connection_id: connection.id.clone(),
            label: connection.label.clone(),
        });
        Ok(Accepted::Connection(connection))
    }

    /// Fetches the invitation behind a short URL.
    async fn fetch_invitation(&self, url: &str) -> Result<Message, WalletError> {
        let response = self
            .http
            .send(
                Request::get(url)
                    .header("accept", "application/json")
                    .max_bytes(MAX_DOCUMENT_BYTES),
            )
            .await
            .map_err(net_error)?;
        let status = response.status;
        let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
            WalletError::InvalidInvitation(format!("{url} did not answer with an invitation"))
        })?;
        match status {
            200 => {}
            410 if body.to_string().contains("used") => return Err(WalletError::InvitationUsed),
            410 => {
                return Err(WalletError::InvitationExpired(
                    body["error"]["message"].as_str().unwrap_or("").to_string(),
                ))
            }
            _ => {
                return Err(WalletError::InvalidInvitation(format!(
                    "{url} answered {status}: {}",
                    body["error"]["message"].as_str().unwrap_or("")
                )))
            }
        }
        let message = serde_json::from_value(body)
            .map_err(|e| WalletError::InvalidInvitation(format!("{url}: {e}")))?;
        invitation::check(message)
    }

    /// The connections this wallet holds (one per issuer or verifier it accepted).
    pub fn connections(&self) -> Result<Vec<Connection>, WalletError> {
        let mut all: Vec<Connection> = self.list(CONNECTIONS)?;
        all.sort_by_key(|c| c.created_at);
        Ok(all)
    }

    fn list<T: serde::de::DeserializeOwned>(&self, tree: &str) -> Result<Vec<T>, WalletError> {
        self.store
            .list(tree)?
            .into_iter()
            .map(|(id, bytes)| {
                serde_json::from_slice(&bytes).map_err(|e| {
                    WalletError::Storage(StoreError::Decode {
                        tree: tree.to_string(),
                        reason: format!("{id}: {e}"),
                    })
                })
            })
            .collect()
    }

    /// Picks up everything waiting at the mediator, processes it, and acknowledges it.
    pub async fn sync(&self) -> Result<SyncReport, WalletError> {
        let _busy = self.busy.lock().await;
        let Some(mediation) = self.mediation()? else {
            return Ok(SyncReport::default());
        };
        let mut report = SyncReport::default();
        loop {
            let request = pickup::delivery_request_message(
                mediation.pickup,
                &pickup::DeliveryRequest {
                    limit: PICKUP_BATCH,
                    recipient_did: None,
                },
            );
            let answer = self.ask_mediator(&mediation, request).await?;
            // Nothing waits: the mediator answers with a status.
            if !is_delivery(&answer) {
                break;
            }
            let delivery = self.delivery_of(&mediation, &answer)?;
            if delivery.messages.is_empty() {
                break;
            }
            let received = self.receive_delivery(delivery, &mut report).await?;
            let count = received.len() as u64;
            let ack = pickup::messages_received_message(
                mediation.pickup,
                &pickup::MessagesReceived {
                    message_id_list: received,
                },
            );
            self.ask_mediator(&mediation, ack).await?;
            if count < PICKUP_BATCH {
                break;
            }
        }
        Ok(report)
    }

    /// The Pickup delivery in `message`, or the mediator's error for a malformed one.
    fn delivery_of(
        &self,
        mediation: &Mediation,
        message: &Message,
    ) -> Result<pickup::Delivery, WalletError> {
        pickup::parse_delivery(message)
            .map_err(|error| WalletError::Refused(mediation.agent.clone(), error.to_string()))
    }

    /// Processes every message of a Pickup delivery; returns the ids to acknowledge.
    async fn receive_delivery(
        &self,
        delivery: pickup::Delivery,
        report: &mut SyncReport,
    ) -> Result<Vec<String>, WalletError> {
        let mut received = Vec::with_capacity(delivery.messages.len());
        for delivered in delivery.messages {
            match delivered.envelope {
                Some(envelope) => self.receive(&envelope, report).await?,
                None => report.refused += 1,
            }
            received.push(delivered.id);
        }
        Ok(received)
    }

    /// The credential offers received, in every state.
    pub fn offers(&self) -> Result<Vec<OfferRecord>, WalletError> {
        let mut all: Vec<OfferRecord> = self.list(OFFERS)?;
        all.retain(|o| o.state == OfferState::Pending);
        all.sort_by_key(|o| o.received_at);
        Ok(all)
    }

    /// The verified credentials the wallet holds.
    pub fn credentials(&self) -> Result<Vec<StoredCredential>, WalletError> {
        let mut all: Vec<StoredCredential> = self.list(CREDENTIALS)?;
        all.sort_by_key(|c| c.stored_at);
        Ok(all)
    }

    /// One stored credential by its id.
    pub fn credential(&self, id: &str) -> Result<StoredCredential, WalletError> {
        self.store
            .get_json(CREDENTIALS, id)?
            .ok_or_else(|| WalletError::NotFound {
                what: "credential",
                id: id.to_string(),
            })
    }

    /// Deletes a credential from this wallet (the issuer is not told).
    pub fn delete_credential(&self, id: &str) -> Result<(), WalletError> {
        if !self.store.delete(CREDENTIALS, id)? {
            return Err(WalletError::NotFound {
                what: "credential",
                id: id.to_string(),
            });
        }
        self.emit(WalletEvent::CredentialsRemoved {
            template_id: None,
            count: 1,
        });
        Ok(())
    }

    /// The verifiers' requests waiting for an answer, each with the credentials that match.
    pub fn presentation_requests(&self) -> Result<Vec<(RequestRecord, Vec<String>)>, WalletError> {
        let credentials = self.credentials()?;
        let mut all: Vec<RequestRecord> = self.list(REQUESTS)?;
        all.retain(|r| r.state == RequestState::Pending);
        all.sort_by_key(|r| r.received_at);
        Ok(all
            .into_iter()
            .map(|request| {
                let matching = request.matching(&credentials);
                (request, matching)
            })
            .collect())
    }

    /// The connection between our DID `mine` (when known) and `theirs`: matched on both, as
    /// one peer may have several connections with this wallet.
    fn connection_between(
        &self,
        mine: Option<&str>,
        theirs: &str,
    ) -> Result<Option<Connection>, WalletError> {
        Ok(self
            .connections()?
            .into_iter()
            .find(|c| c.their_did == theirs && mine.is_none_or(|mine| c.my_did == mine)))
    }
}

#[cfg(test)]
mod versions_tests {
    use super::*;

    fn disclosing(ids: &[&str]) -> discover_features::Disclose {
        discover_features::Disclose {
            disclosures: ids
                .iter()
                .map(|id| discover_features::Disclosure {
                    feature_type: discover_features::PROTOCOL.to_string(),
                    id: id.to_string(),
                    roles: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_newest_coordinate_mediation_and_the_oldest_pickup_disclosed_are_chosen() {
        use mediation::Version::{V2, V3};
        let all = disclosing(&[
            mediation::v3::PIURI,
            mediation::v2::PIURI,
            pickup::v3::PIURI,
            pickup::v4::PIURI,
        ]);
        assert_eq!(versions_from(Some(&all)), (V3, pickup::Version::V3));
        let old = disclosing(&[mediation::v2::PIURI, pickup::v4::PIURI]);
        assert_eq!(versions_from(Some(&old)), (V2, pickup::Version::V4));
        // Nothing disclosed (or no answer): 3.0 of each, as before the choice.
        assert_eq!(versions_from(None), (V3, pickup::Version::V3));
        assert_eq!(
            versions_from(Some(&disclosing(&[]))),
            (V3, pickup::Version::V3)
        );
        // Only protocols count, not another feature type with the same id.
        let mut goal = disclosing(&[mediation::v2::PIURI]);
        goal.disclosures[0].feature_type = "goal-code".into();
        assert_eq!(versions_from(Some(&goal)).0, V3);
    }
}
