//! The organisations' DIDComm side: what reaches an organisation's DID through the mediator's
//! endpoint (a wallet connecting with `pthid` = a customer's invitation, Issue Credential 3.0
//! requests, acks, problem reports), and what goes out to wallets (offers, credentials,
//! deletion notices) through a durable outbox: every outgoing message is stored in the same
//! atomic write as the state change that caused it, then handed to the mediator, and handed
//! again after a crash until the mediator has queued it. Wallets de-duplicate by message id.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use wallet_core::did::{did_of, multikey_encode, resolve_local, Resolver};
use wallet_core::didcomm::{DidComm, Layer, Message, Unpacked};
use wallet_core::protocols::issue_credential::{self, Offer};
use wallet_core::protocols::{deletion, present_proof, ProtocolError};

use super::callbacks::Event;
use super::customers::{Customer, Status};
use super::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use super::templates::Template;
use super::time::now_ms;
use super::{
    ApiError, Issuer, Org, CUSTOMERS, CUSTOMER_INVITATIONS, ORG_AGREEMENT_KEYS, TEMPLATES,
    TEMPLATE_IDS,
};
use crate::mediator::{Inbox, Outcome, Refusal, PING, PING_RESPONSE, PROBLEM_REPORT};

/// Collections of this module.
pub(crate) const CONNECTIONS: &str = "connections";
pub(crate) const CREDENTIALS: &str = "credentials";
/// `<template id>/<thid>` → credential key, for deletion.
pub(crate) const CREDENTIALS_BY_TEMPLATE: &str = "credentials_by_template";
pub(crate) const OUTBOX: &str = "outbox";
/// Inbound message ids already handled (wallets may send again after a timeout).
pub(crate) const SEEN: &str = "seen";
/// Per organisation: the next free status list index.
pub(crate) const STATUS_COUNTERS: &str = "status_counters";

/// A wallet connected to an organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub org_id: String,
    /// The wallet's pairwise DID for this organisation.
    pub their_did: String,
    pub customer_id: Option<String>,
    pub created_ms: u64,
}

/// Where an issuance stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialState {
    /// The offer went out; waiting for the wallet's request.
    Offered,
    /// Signed and sent; waiting for the wallet's ack.
    Issued,
    /// The wallet verified and stored it.
    Accepted,
    /// The wallet declined the offer or refused the credential.
    Declined,
    /// Its template was deleted: revoked in the status list, the holder told.
    Revoked,
}

/// One credential exchange of an organisation, from offer to ack. `Debug` redacts the values,
/// the offered detail and the credential.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedCredential {
    /// `urn:uuid:...`, the credential's id.
    pub id: String,
    pub org_id: String,
    pub template_id: String,
    pub customer_id: Option<String>,
    pub holder_did: String,
    /// The offer's message id, which threads the exchange.
    pub thid: String,
    pub state: CredentialState,
    pub values: Map<String, Value>,
    /// The detail offered (the unsigned credential); the request must echo it.
    pub detail: Value,
    pub status_index: u64,
    pub credential: Option<Value>,
    /// Why the wallet declined, when it did.
    pub problem: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

wallet_core::redacted_debug!(IssuedCredential {
    shown: [
        id,
        org_id,
        template_id,
        customer_id,
        holder_did,
        thid,
        state,
        status_index,
        problem,
        created_ms,
        updated_ms
    ],
    redacted: [values, detail, credential],
});

/// A message waiting to be handed to the mediator. `Debug` redacts the message (it can carry
/// a credential).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Outgoing {
    from: String,
    to: String,
    message: Message,
}

wallet_core::redacted_debug!(Outgoing {
    shown: [from, to],
    redacted: [message],
});

/// The storage writes of one state change, with the messages it sends.
#[derive(Default)]
pub(crate) struct Change {
    pub expect: Vec<Expect>,
    pub writes: Vec<Write>,
    outgoing: Vec<(String, Outgoing)>,
    events: Vec<Event>,
}

impl Change {
    /// Marks an inbound message handled, once: the change fails if it was handled meanwhile.
    pub fn mark_seen(&mut self, message: &Message) -> Result<(), ApiError> {
        self.expect.push(Expect::Absent {
            collection: SEEN,
            key: message.id.clone(),
        });
        self.writes.push(Write::put(SEEN, &message.id, &now_ms())?);
        Ok(())
    }

    /// Records a callback event as part of this change.
    pub fn event(&mut self, org: &Org, type_: &str, data: Value) {
        self.events.push(Event::new(org, type_, data));
    }

    /// Queues `message` from `from` to `to` in the outbox as part of this change.
    pub fn send(&mut self, from: &str, to: &str, message: Message) -> Result<(), ApiError> {
        let key = format!("{:016x}-{}", now_ms(), message.id);
        let outgoing = Outgoing {
            from: from.to_string(),
            to: to.to_string(),
            message: message.from(from.to_string()).to([to.to_string()]),
        };
        self.writes.push(Write::put(OUTBOX, &key, &outgoing)?);
        self.outgoing.push((key, outgoing));
        Ok(())
    }
}

/// The status list index credentials of one organisation are numbered with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusCounter {
    pub next: u64,
}

/// How many credentials one organisation's status list holds.
pub const STATUS_LIST_SIZE: u64 = 131_072;

fn credential_key(org_id: &str, thid: &str) -> String {
    format!("{org_id}/{thid}")
}

impl<S: IssuerStorage> Issuer<S> {
    /// Applies a change and hands its messages to the mediator.
    pub(crate) async fn commit(&self, mut change: Change) -> Result<(), ApiError> {
        let events = std::mem::take(&mut change.events);
        for event in &events {
            change.writes.extend(self.event_writes(event).await?);
        }
        self.storage.apply(change.expect, change.writes).await?;
        if !events.is_empty() {
            self.callbacks.notify_one();
        }
        for (key, outgoing) in change.outgoing {
            self.deliver(&key, &outgoing).await;
        }
        Ok(())
    }

    /// Packs one outbox message for its recipient and hands it to the mediator; removes it from
    /// the outbox once queued. A failure leaves it for [`Issuer::flush_outbox`].
    async fn deliver(&self, key: &str, outgoing: &Outgoing) {
        let result = async {
            let didcomm = DidComm::new(self.keys.clone(), Resolver::default());
            let packed = didcomm
                .pack_for_delivery(&outgoing.message, Some(&outgoing.from), &outgoing.to, false)
                .await
                .map_err(|e| e.to_string())?;
            self.hub()
                .map_err(|e| e.message)?
                .deliver(&packed.message)
                .await
                .map_err(|e| e.to_string())?;
            self.storage
                .apply(vec![], vec![Write::delete(OUTBOX, key)])
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::debug!(message = %outgoing.message.id, to = %outgoing.to, "message handed to the mediator")
            }
            Err(error) => {
                tracing::warn!(message = %outgoing.message.id, to = %outgoing.to, %error, "message stays in the outbox")
            }
        }
    }

    /// Hands every message still in the outbox to the mediator (at start, after a crash).
    pub async fn flush_outbox(&self) -> Result<usize, ApiError> {
        self.flush_outbox_older_than(std::time::Duration::ZERO)
            .await
    }

    /// Hands the outbox messages written more than `age` ago to the mediator (younger ones
    /// are still being handed over by the change that wrote them).
    pub async fn flush_outbox_older_than(
        &self,
        age: std::time::Duration,
    ) -> Result<usize, ApiError> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        let waiting: Vec<(String, Vec<u8>)> = self.storage.scan(OUTBOX, "", 0, usize::MAX).await?;
        let waiting: Vec<(String, Vec<u8>)> = waiting
            .into_iter()
            .filter(|(key, _)| {
                key.get(..16)
                    .and_then(|ms| u64::from_str_radix(ms, 16).ok())
                    .is_none_or(|ms| ms <= cutoff)
            })
            .collect();
        let count = waiting.len();
        for (key, bytes) in waiting {
            match serde_json::from_slice::<Outgoing>(&bytes) {
                Ok(outgoing) => self.deliver(&key, &outgoing).await,
                Err(error) => tracing::error!(%key, %error, "unreadable outbox entry"),
            }
        }
        Ok(count)
    }

    /// The organisation a message was encrypted to, by its key agreement key.
    async fn recipient_org(&self, unpacked: &Unpacked) -> Result<Org, Refusal> {
        let kid = unpacked
            .metadata
            .layers
            .iter()
            .find_map(|layer| match layer {
                Layer::Anoncrypt { recipient_kid, .. } | Layer::Authcrypt { recipient_kid, .. } => {
                    Some(recipient_kid.as_str())
                }
                Layer::Signed { .. } => None,
            })
            .ok_or_else(|| Refusal::BadRequest("the message was not encrypted".into()))?;
        let key = resolve_local(did_of(kid))
            .ok()
            .and_then(|doc| doc.find_key(kid))
            .ok_or_else(|| Refusal::BadRequest(format!("no key {kid}")))?;
        let org_id: Option<String> = self
            .storage
            .get_json(ORG_AGREEMENT_KEYS, &multikey_encode(&key))
            .await
            .map_err(Refusal::Storage)?;
        let org = match org_id {
            Some(id) => self.org(&id).await.ok().flatten(),
            None => None,
        };
        org.ok_or_else(|| Refusal::BadRequest(format!("no organisation receives at {kid}")))
    }

    /// Handles a message for an organisation.
    async fn receive_for_org(&self, unpacked: Unpacked) -> Result<Outcome, Refusal> {
        let org = self.recipient_org(&unpacked).await?;
        let Some(sender) = unpacked.metadata.authcrypt_sender_did() else {
            return Err(Refusal::Unauthenticated("a message to an organisation"));
        };
        let message = unpacked.message;
        if self
            .storage
            .get(SEEN, &message.id)
            .await
            .map_err(Refusal::Storage)?
            .is_some()
        {
            tracing::debug!(message = %message.id, "already handled");
            return Ok(Outcome::Accepted);
        }
        let result = self.dispatch(&org, &sender, &message).await;
        match result {
            Ok(()) => Ok(Outcome::Accepted),
            Err(Answer::Problem(code, comment)) => {
                tracing::info!(org = %org.record.id, from = %sender, %code, %comment, "problem reported to a wallet");
                let mut change = Change::default();
                change
                    .writes
                    .push(Write::put(SEEN, &message.id, &now_ms()).map_err(Refusal::Storage)?);
                change
                    .send(
                        &org.didcomm_did,
                        &sender,
                        wallet_core::protocols::problem_report(
                            message.thread_id(),
                            &code,
                            &comment,
                        ),
                    )
                    .map_err(api_refusal)?;
                self.commit(change).await.map_err(api_refusal)?;
                Ok(Outcome::Accepted)
            }
            Err(Answer::Refuse(refusal)) => Err(refusal),
        }
    }

    async fn dispatch(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        if message.type_ == present_proof::PRESENTATION {
            // Verifiers need no connection: the wallet answers a request it was handed.
            return self.presentation(org, sender, message).await;
        }
        let connection: Option<Connection> = self
            .storage
            .get_json(CONNECTIONS, &format!("{}/{sender}", org.record.id))
            .await?;
        if connection.is_none() {
            // The first message of a wallet answers an invitation.
            return self.connect(org, sender, message).await;
        }
        match message.type_.as_str() {
            PING => {
                let mut change = self.seen(message)?;
                if message
                    .body
                    .get("response_requested")
                    .and_then(Value::as_bool)
                    != Some(false)
                {
                    let reply = Message::new(PING_RESPONSE, json!({})).thid(message.id.clone());
                    change.send(&org.didcomm_did, sender, reply)?;
                }
                self.commit(change).await?;
                Ok(())
            }
            issue_credential::REQUEST => self.issue(org, sender, message).await,
            issue_credential::ACK => {
                self.settle(org, sender, message, CredentialState::Accepted, None)
                    .await
            }
            PROBLEM_REPORT => {
                let comment = message
                    .body
                    .get("comment")
                    .and_then(Value::as_str)
                    .unwrap_or("(no comment)")
                    .to_string();
                self.settle(
                    org,
                    sender,
                    message,
                    CredentialState::Declined,
                    Some(comment),
                )
                .await
            }
            other => Err(Answer::Problem(
                "e.p.msg.unsupported".into(),
                format!("{} does not handle {other}", org.record.name),
            )),
        }
    }

    /// The change that marks `message` handled.
    fn seen(&self, message: &Message) -> Result<Change, ApiError> {
        let mut change = Change::default();
        change.mark_seen(message)?;
        Ok(change)
    }

    /// A wallet's first message: it must answer a customer's invitation (`pthid`).
    async fn connect(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        let Some(pthid) = message.pthid.as_deref() else {
            return Err(Answer::Problem(
                "e.p.req.not-connected".into(),
                "connect first: answer an invitation with its id as pthid".into(),
            ));
        };
        let key: Option<String> = self.storage.get_json(CUSTOMER_INVITATIONS, pthid).await?;
        let Some(key) = key else {
            return Err(Answer::Problem(
                "e.p.req.unknown-invitation".into(),
                format!("{} sent no invitation {pthid}", org.record.name),
            ));
        };
        let customer: Customer = self
            .storage
            .get_json(CUSTOMERS, &key)
            .await?
            .ok_or_else(|| Answer::Problem("e.p.req.unknown-invitation".into(), pthid.into()))?;
        if customer.org_id != org.record.id {
            return Err(Answer::Problem(
                "e.p.req.unknown-invitation".into(),
                format!("{} sent no invitation {pthid}", org.record.name),
            ));
        }
        if !self
            .hub()?
            .use_invitation(pthid)
            .await
            .map_err(Refusal::Storage)?
        {
            return Err(Answer::Problem(
                "e.p.req.invitation-used".into(),
                "this invitation was used already".into(),
            ));
        }
        let now = now_ms();
        let mut change = self.seen(message)?;
        let connection = Connection {
            org_id: org.record.id.clone(),
            their_did: sender.to_string(),
            customer_id: Some(customer.id.clone()),
            created_ms: now,
        };
        change.writes.push(Write::put(
            CONNECTIONS,
            format!("{}/{sender}", org.record.id),
            &connection,
        )?);
        let before =
            serde_json::to_vec(&customer).map_err(|e| ApiError::internal(&e.to_string()))?;
        let mut onboarded = customer.clone();
        onboarded.status = Status::Onboarded;
        onboarded.connection_did = Some(sender.to_string());
        onboarded.updated_ms = now;
        change.expect.push(Expect::Equals {
            collection: CUSTOMERS,
            key: key.clone(),
            value: before,
        });
        change.writes.push(Write::put(CUSTOMERS, &key, &onboarded)?);
        if message.type_ == PING
            && message
                .body
                .get("response_requested")
                .and_then(Value::as_bool)
                != Some(false)
        {
            let reply = Message::new(PING_RESPONSE, json!({})).thid(message.id.clone());
            change.send(&org.didcomm_did, sender, reply)?;
        }
        if let Some(auto_issue) = &customer.details.auto_issue {
            match self.template_any(&auto_issue.template_id).await? {
                Some(template) if template.has_room() => {
                    self.offer_into(
                        &mut change,
                        org,
                        &template,
                        sender,
                        Some(&customer.id),
                        &auto_issue.values,
                    )
                    .await?;
                }
                Some(template) => {
                    tracing::warn!(template = %template.template_id, "auto-issue skipped: numberOfCredentials reached")
                }
                None => {
                    tracing::warn!(template = %auto_issue.template_id, "auto-issue skipped: the template is gone")
                }
            }
        }
        change.event(
            org,
            "customer.onboarded",
            json!({ "customerId": customer.id, "connectionDid": sender }),
        );
        self.commit(change).await?;
        tracing::info!(org = %org.record.id, customer = %customer.id, "customer onboarded: wallet connected");
        Ok(())
    }

    /// Adds an offer of a credential from `template` with `values` to `holder` to `change`.
    pub(crate) async fn offer_into(
        &self,
        change: &mut Change,
        org: &Org,
        template: &Template,
        holder: &str,
        customer_id: Option<&str>,
        values: &Map<String, Value>,
    ) -> Result<IssuedCredential, ApiError> {
        let now = now_ms();
        let counter: StatusCounter = self
            .storage
            .get_json(STATUS_COUNTERS, &org.record.id)
            .await?
            .unwrap_or_default();
        if counter.next >= STATUS_LIST_SIZE {
            return Err(ApiError::conflict(&format!(
                "the organisation's status list is full ({STATUS_LIST_SIZE} credentials)"
            )));
        }
        let counter_bytes =
            serde_json::to_vec(&counter).map_err(|e| ApiError::internal(&e.to_string()))?;
        change.expect.push(if counter.next == 0 {
            Expect::Absent {
                collection: STATUS_COUNTERS,
                key: org.record.id.clone(),
            }
        } else {
            Expect::Equals {
                collection: STATUS_COUNTERS,
                key: org.record.id.clone(),
                value: counter_bytes,
            }
        });
        change.writes.push(Write::put(
            STATUS_COUNTERS,
            &org.record.id,
            &StatusCounter {
                next: counter.next + 1,
            },
        )?);
        let claims = self.claims(template, values);
        let id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let detail = json!({
            "credential": self.unsigned_credential(org, template, &id, holder, &claims, counter.next),
            "options": issue_credential::proof_options(),
        });
        let offer = Offer {
            thid: uuid::Uuid::new_v4().to_string(),
            comment: Some(format!(
                "{} offers you {}",
                org.record.name, template.spec.name
            )),
            attributes: claims
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            descriptions: template
                .fields()
                .into_iter()
                .filter(|(name, _, _)| claims.contains_key(name))
                .map(|(name, description, _)| (name, description))
                .collect(),
            detail: detail.clone(),
        };
        let record = IssuedCredential {
            id,
            org_id: org.record.id.clone(),
            template_id: template.template_id.clone(),
            customer_id: customer_id.map(str::to_string),
            holder_did: holder.to_string(),
            thid: offer.thid.clone(),
            state: CredentialState::Offered,
            values: values.clone(),
            detail,
            status_index: counter.next,
            credential: None,
            problem: None,
            created_ms: now,
            updated_ms: now,
        };
        let key = credential_key(&org.record.id, &offer.thid);
        change.writes.push(Write::put(CREDENTIALS, &key, &record)?);
        change.writes.push(Write::put(
            CREDENTIALS_BY_TEMPLATE,
            format!("{}/{}", template.template_id, offer.thid),
            &key,
        )?);
        self.count_into(change, template, 1, 0)?;
        change.send(
            &org.didcomm_did,
            holder,
            issue_credential::offer_message(&offer),
        )?;
        Ok(record)
    }

    /// Adds `offered` and `issued` to a template's counters, guarded against concurrent
    /// changes to it.
    fn count_into(
        &self,
        change: &mut Change,
        template: &Template,
        offered: u64,
        issued: u64,
    ) -> Result<(), ApiError> {
        let before =
            serde_json::to_vec(template).map_err(|e| ApiError::internal(&e.to_string()))?;
        let mut counted = template.clone();
        counted.total_offered += offered;
        counted.total_issued += issued;
        counted.updated_ms = now_ms();
        change.expect.push(Expect::Equals {
            collection: TEMPLATES,
            key: template.key.clone(),
            value: before,
        });
        change
            .writes
            .push(Write::put(TEMPLATES, &template.key, &counted)?);
        Ok(())
    }

    /// The credential subject's claims: the template's fixed fields, then the values given.
    fn claims(&self, template: &Template, values: &Map<String, Value>) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert(
            "credentialIssuer".into(),
            json!(template.spec.credential_issuer),
        );
        claims.insert(
            "credentialType".into(),
            json!(template.spec.credential_type),
        );
        for (name, _, _) in template.fields() {
            if let Some(value) = values.get(&name) {
                claims.insert(name, value.clone());
            }
        }
        claims
    }

    /// The status list credential's URL of an organisation.
    pub fn status_list_url(&self, org: &Org) -> String {
        format!("{}/orgs/{}/status/1", self.public_url, org.record.id)
    }

    /// A wallet's `request-credential`: sign and send the offered credential.
    async fn issue(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        let (thid, detail) = issue_credential::parse_request(message).map_err(protocol_problem)?;
        let key = credential_key(&org.record.id, &thid);
        let record: Option<IssuedCredential> = self.storage.get_json(CREDENTIALS, &key).await?;
        let record = match record {
            Some(r) if r.holder_did == sender => r,
            _ => {
                return Err(Answer::Problem(
                    "e.p.req.unknown-offer".into(),
                    format!("no offer {thid} was made to you"),
                ))
            }
        };
        if record.state != CredentialState::Offered {
            return Err(Answer::Problem(
                "e.p.req.not-offered".into(),
                format!("the offer {thid} is {:?} already", record.state),
            ));
        }
        if detail != record.detail {
            return Err(Answer::Problem(
                "e.p.req.detail-changed".into(),
                "the request asks for another credential than the one offered".into(),
            ));
        }
        let template = self
            .template_any(&record.template_id)
            .await?
            .ok_or_else(|| {
                Answer::Problem(
                    "e.p.req.template-deleted".into(),
                    format!("the template {} was deleted", record.template_id),
                )
            })?;
        if !template.has_room() {
            return Err(Answer::Problem(
                "e.p.req.limit-reached".into(),
                format!(
                    "{} has issued all the credentials it may",
                    template.spec.name
                ),
            ));
        }
        let credential = self.sign_credential(org, &record.detail)?;
        let mut change = self.seen(message)?;
        let before = serde_json::to_vec(&record).map_err(|e| ApiError::internal(&e.to_string()))?;
        let mut issued = record.clone();
        issued.state = CredentialState::Issued;
        issued.credential = Some(credential.clone());
        issued.updated_ms = now_ms();
        change.expect.push(Expect::Equals {
            collection: CREDENTIALS,
            key: key.clone(),
            value: before,
        });
        change.writes.push(Write::put(CREDENTIALS, &key, &issued)?);
        self.count_into(&mut change, &template, 0, 1)?;
        change.send(
            &org.didcomm_did,
            sender,
            issue_credential::issue_message(&thid, credential),
        )?;
        change.event(
            org,
            "credential.issued",
            json!({ "credentialId": issued.id, "templateId": issued.template_id, "customerId": issued.customer_id }),
        );
        self.commit(change).await?;
        tracing::info!(org = %org.record.id, credential = %issued.id, "credential issued");
        Ok(())
    }

    /// An ack or a problem report in an exchange's thread.
    async fn settle(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
        state: CredentialState,
        problem: Option<String>,
    ) -> Result<(), Answer> {
        let Some(thid) = message.thid.as_deref() else {
            // A problem report outside any exchange: noted, nothing to change.
            self.commit(self.seen(message)?).await?;
            return Ok(());
        };
        let key = credential_key(&org.record.id, thid);
        let record: Option<IssuedCredential> = self.storage.get_json(CREDENTIALS, &key).await?;
        let Some(record) = record.filter(|r| r.holder_did == sender) else {
            self.commit(self.seen(message)?).await?;
            return Ok(());
        };
        let allowed = match state {
            CredentialState::Accepted => record.state == CredentialState::Issued,
            _ => matches!(
                record.state,
                CredentialState::Offered | CredentialState::Issued
            ),
        };
        let mut change = self.seen(message)?;
        if allowed {
            let before =
                serde_json::to_vec(&record).map_err(|e| ApiError::internal(&e.to_string()))?;
            let mut settled = record.clone();
            settled.state = state;
            settled.problem = problem;
            settled.updated_ms = now_ms();
            change.expect.push(Expect::Equals {
                collection: CREDENTIALS,
                key: key.clone(),
                value: before,
            });
            change.writes.push(Write::put(CREDENTIALS, &key, &settled)?);
            change.event(
                org,
                match state {
                    CredentialState::Accepted => "credential.accepted",
                    _ => "credential.declined",
                },
                json!({ "credentialId": record.id, "templateId": record.template_id, "customerId": record.customer_id, "problem": settled.problem }),
            );
            tracing::info!(org = %org.record.id, credential = %record.id, ?state, "exchange settled");
        }
        self.commit(change).await?;
        Ok(())
    }

    /// Every credential exchange of a template.
    pub(crate) async fn credentials_of_template(
        &self,
        template_id: &str,
    ) -> Result<Vec<IssuedCredential>, ApiError> {
        let keys: Vec<String> = self
            .storage
            .scan_json(
                CREDENTIALS_BY_TEMPLATE,
                &format!("{template_id}/"),
                0,
                usize::MAX,
            )
            .await?;
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(record) = self.storage.get_json(CREDENTIALS, &key).await? {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// Deletes a template of `org`: tells every holder of its credentials which ones go, marks
    /// them revoked (status list), and removes the template, in one atomic change.
    pub async fn delete_template(
        &self,
        org: &Org,
        template_id: &str,
    ) -> Result<Template, ApiError> {
        let template = self.template(org, template_id).await?;
        let credentials = self.credentials_of_template(&template.template_id).await?;
        let mut change = Change::default();
        let before =
            serde_json::to_vec(&template).map_err(|e| ApiError::internal(&e.to_string()))?;
        change.expect.push(Expect::Equals {
            collection: TEMPLATES,
            key: template.key.clone(),
            value: before,
        });
        change.writes.push(Write::delete(TEMPLATES, &template.key));
        change
            .writes
            .push(Write::delete(TEMPLATE_IDS, &template.template_id));
        let mut by_holder: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for record in &credentials {
            let key = credential_key(&org.record.id, &record.thid);
            if matches!(
                record.state,
                CredentialState::Issued | CredentialState::Accepted
            ) {
                by_holder
                    .entry(record.holder_did.clone())
                    .or_default()
                    .push(record.id.clone());
            }
            if record.state != CredentialState::Revoked {
                let mut revoked = record.clone();
                revoked.state = CredentialState::Revoked;
                revoked.updated_ms = now_ms();
                change.writes.push(Write::put(CREDENTIALS, &key, &revoked)?);
            }
        }
        let holders = by_holder.len();
        change.event(
            org,
            "template.deleted",
            json!({ "templateId": template.template_id, "credentialsRevoked": credentials.iter().filter(|c| c.state != CredentialState::Revoked).count(), "holdersNotified": holders }),
        );
        for (holder, credential_ids) in by_holder {
            let notice = deletion::Notice {
                template_id: template.template_id.clone(),
                credential_ids,
                reason: format!(
                    "{} deleted the template {}",
                    org.record.name, template.spec.name
                ),
            };
            change.send(&org.didcomm_did, &holder, deletion::notice_message(&notice))?;
        }
        self.commit(change).await.map_err(|e| match e.status {
            409 => ApiError::conflict("the template changed while it was being deleted; try again"),
            _ => e,
        })?;
        tracing::info!(org = %org.record.id, template = %template_id, holders, "template deleted");
        Ok(template)
    }
}

/// How a message to an organisation is answered when it cannot be acted on.
pub(crate) enum Answer {
    /// Sent back to the wallet as a problem report (the message itself was fine to receive).
    Problem(String, String),
    /// Refused at the door (the HTTP answer says why).
    Refuse(Refusal),
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        Answer::Refuse(api_refusal(error))
    }
}

impl From<crate::storage::StorageError> for Answer {
    fn from(error: crate::storage::StorageError) -> Self {
        Answer::Refuse(Refusal::Storage(error))
    }
}

impl From<Refusal> for Answer {
    fn from(refusal: Refusal) -> Self {
        Answer::Refuse(refusal)
    }
}

impl From<BatchError> for Answer {
    fn from(error: BatchError) -> Self {
        Answer::from(ApiError::from(error))
    }
}

fn api_refusal(error: ApiError) -> Refusal {
    match error.status {
        500.. => Refusal::Storage(crate::storage::StorageError::Backend(error.message)),
        _ => Refusal::BadRequest(error.message),
    }
}

fn protocol_problem(error: ProtocolError) -> Answer {
    Answer::Problem("e.p.msg.malformed".into(), error.to_string())
}

impl<S: IssuerStorage> Inbox for Issuer<S> {
    fn receive(&self, unpacked: Unpacked) -> BoxFuture<'_, Result<Outcome, Refusal>> {
        Box::pin(self.receive_for_org(unpacked))
    }
}

/// The issuer as the mediator's inbox.
pub fn inbox<S: IssuerStorage>(issuer: &Arc<Issuer<S>>) -> std::sync::Weak<dyn Inbox> {
    let inbox: Arc<dyn Inbox> = issuer.clone();
    Arc::downgrade(&inbox)
}

impl<S: IssuerStorage> Issuer<S> {
    /// The unsigned W3C VC 2.0 a template's credential is: issued by the organisation's
    /// did:web, about the holder's connection DID, naming the template in `credentialSchema`,
    /// with a revocation entry in the organisation's status list.
    fn unsigned_credential(
        &self,
        org: &Org,
        template: &Template,
        id: &str,
        holder: &str,
        claims: &Map<String, Value>,
        status_index: u64,
    ) -> Value {
        let mut subject = Map::new();
        subject.insert("id".into(), json!(holder));
        subject.extend(claims.clone());
        let list = self.status_list_url(org);
        let mut credential = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": id,
            "type": ["VerifiableCredential", "LanyardCredential"],
            "issuer": { "id": org.issuer_did, "name": org.record.name },
            "name": template.spec.name,
            "validFrom": super::time::rfc3339_secs(now_ms() / 1000),
            "credentialSubject": subject,
            "credentialSchema": { "id": template.template_id, "type": "LanyardCredentialTemplate" },
            "credentialStatus": {
                "id": format!("{list}#{status_index}"),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": status_index.to_string(),
                "statusListCredential": list,
            },
        });
        if let Some(until) = &template.spec.credential_expiration {
            credential["validUntil"] = json!(until);
        }
        credential
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Signs the credential of an offer's detail as the organisation (its did:web key).
    fn sign_credential(&self, org: &Org, detail: &Value) -> Result<Value, ApiError> {
        let unsigned = detail
            .get("credential")
            .ok_or_else(|| ApiError::internal("the offer holds no credential"))?;
        wallet_core::credentials::vc::issue(
            unsigned,
            &self.keys,
            &org.signing_key,
            &format!("{}#key-1", org.issuer_did),
            now_ms() / 1000,
        )
        .map_err(|e| ApiError::internal(&format!("signing the credential: {e}")))
    }

    /// The organisation's revocation list as a signed `BitstringStatusListCredential`: every
    /// credential of a deleted template has its bit set.
    pub async fn status_list(&self, org: &Org) -> Result<Value, ApiError> {
        use wallet_core::credentials::status_list::{status_list_credential, StatusList};
        let mut list = StatusList::new(STATUS_LIST_SIZE as usize);
        for record in self.credential_exchanges(org).await? {
            if record.state == CredentialState::Revoked {
                list.set(record.status_index as usize, true);
            }
        }
        let now = now_ms() / 1000;
        let unsigned = status_list_credential(
            &self.status_list_url(org),
            &org.issuer_did,
            &super::time::rfc3339_secs(now),
            &list,
        );
        wallet_core::credentials::vc::issue(
            &unsigned,
            &self.keys,
            &org.signing_key,
            &format!("{}#key-1", org.issuer_did),
            now,
        )
        .map_err(|e| ApiError::internal(&format!("signing the status list: {e}")))
    }
}
