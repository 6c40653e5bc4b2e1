//! What reaches an organisation's DID through the mediator's endpoint: finding the
//! organisation a message was encrypted to, dispatching it (a wallet connecting with `pthid` =
//! a customer's invitation, trust pings, Issue Credential 3.0 requests, acks, problem reports,
//! presentations), and the answers to senders without a connection, which are never stored.

use lanyard_protocol::did::{did_of, multikey_encode, resolve_local};
use lanyard_protocol::didcomm::{Message, Unpacked};
use lanyard_protocol::protocols::report_problem::{self, ProblemReport};
use lanyard_protocol::protocols::{issue_credential, present_proof, trust_ping, ProtocolError};

use super::customers::Customer;
use super::error::MAX_RACES;
use super::outbox::Change;
use super::records::{connection_key, Connection, CredentialState, CONNECTIONS, SEEN};
use super::store::{BatchError, IssuerStorage, IssuerStorageExt};
use super::{Issuer, IssuerError, Org, CUSTOMERS, CUSTOMER_INVITATIONS, ORG_AGREEMENT_KEYS};
use crate::mediator::{Outcome, Refusal};

impl<S: IssuerStorage> Issuer<S> {
    /// The organisation a message was encrypted to, by its key agreement key.
    async fn recipient_org(&self, unpacked: &Unpacked) -> Result<Org, Refusal> {
        let kid = unpacked
            .metadata
            .recipient_kid()
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

    /// Handles a message the router unpacked for an organisation's DID; returns once what it
    /// changed is durable.
    pub async fn receive(&self, unpacked: Unpacked) -> Result<Outcome, Refusal> {
        let org = self.recipient_org(&unpacked).await?;
        let Some(sender) = unpacked.metadata.authcrypt_sender_did() else {
            return Err(Refusal::Unauthenticated("a message to an organisation"));
        };
        let message = unpacked.message;
        // A change lost to a concurrent one (the same message at another agent, or another
        // message changing the same records) is made again from what is stored then.
        let mut races = 0;
        let result = loop {
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
            match self.dispatch(&org, &sender, &message).await {
                Err(Answer::Raced) if races < MAX_RACES => races += 1,
                other => break other,
            }
        };
        match result {
            Ok(()) => Ok(Outcome::Accepted),
            Err(Answer::Problem(code, comment)) => {
                let report = report_problem::problem_report_message(&ProblemReport::new(
                    code.as_str(),
                    comment.as_str(),
                ))
                .thid(message.thread_id());
                if !self
                    .connected(&org, &sender)
                    .await
                    .map_err(Refusal::Storage)?
                {
                    // Nothing of a stranger's is stored: no outbox entry, no seen mark. A
                    // problem report is never answered with another (no ping-pong).
                    if message.type_ != report_problem::PROBLEM_REPORT {
                        self.answer_stranger(&org, &sender, &code, report).await;
                    }
                    return Ok(Outcome::Accepted);
                }
                tracing::info!(org = %org.record.id, from = %sender, %code, %comment, "problem reported to a wallet");
                let mut change = self.seen(&message).map_err(api_refusal)?;
                change
                    .send(&org.didcomm_did, &sender, report)
                    .map_err(api_refusal)?;
                match self.commit(change).await {
                    Ok(()) => Ok(Outcome::Accepted),
                    // Handled meanwhile (by another agent): what it did stands, unanswered.
                    Err(error) if error.is_changed_meanwhile() => Ok(Outcome::Accepted),
                    Err(error) => Err(api_refusal(error)),
                }
            }
            Err(Answer::Refuse(refusal)) => Err(refusal),
            // Lost every time: the wallet may send it again.
            Err(Answer::Raced) => Err(api_refusal(IssuerError::changed_meanwhile())),
        }
    }

    /// Whether `sender` has a connection with `org`.
    async fn connected(
        &self,
        org: &Org,
        sender: &str,
    ) -> Result<bool, crate::storage::StorageError> {
        Ok(self
            .storage
            .get(CONNECTIONS, &connection_key(&org.record.id, sender))
            .await?
            .is_some())
    }

    /// A problem report to a sender without a connection: handed to the mediator at once if
    /// the organisation's rate for strangers allows, never stored in the outbox, so a stranger
    /// (who may be mediated elsewhere, or nowhere) cannot make it grow.
    async fn answer_stranger(&self, org: &Org, sender: &str, code: &str, report: Message) {
        if self.stranger_answers.take(&org.record.id).is_err() {
            self.outbox_counters.strangers_rate_limited.inc();
            tracing::debug!(org = %org.record.id, from = %sender, %code, "stranger not answered: rate limit");
            return;
        }
        let report = report
            .from(org.didcomm_did.clone())
            .to([sender.to_string()]);
        match self.hand_over(&org.didcomm_did, sender, &report).await {
            Ok(()) => {
                tracing::info!(org = %org.record.id, from = %sender, %code, "problem reported to a stranger")
            }
            Err(error) => {
                self.outbox_counters.strangers_unreachable.inc();
                tracing::debug!(org = %org.record.id, from = %sender, %code, %error, "stranger not answered: not reachable through this mediator");
            }
        }
    }

    async fn dispatch(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        if message.type_ == present_proof::PRESENTATION {
            // Verifiers need no connection: the wallet answers a request it was handed.
            return self.presentation(org, sender, message).await;
        }
        let connection: Option<Connection> = self
            .storage
            .get_json(CONNECTIONS, &connection_key(&org.record.id, sender))
            .await?;
        if connection.is_none()
            || self
                .answers_another_invitation(org, sender, message)
                .await?
        {
            // The first message of a wallet answers an invitation; so does a connected DID's
            // answer to another invitation of the organisation (a second customer record, or
            // the same phone onboarded again).
            return self.connect(org, sender, message).await;
        }
        match message.type_.as_str() {
            trust_ping::PING => {
                let mut change = self.seen(message)?;
                if let Some(reply) = ping_reply(message)? {
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
            report_problem::PROBLEM_REPORT => {
                let comment = report_problem::comment_of(message)
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

    /// Whether `message` answers (by `pthid`) a customer invitation of `org` that `sender` has
    /// not connected through yet.
    async fn answers_another_invitation(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
    ) -> Result<bool, Answer> {
        let Some(pthid) = message.pthid.as_deref() else {
            return Ok(false);
        };
        let Some(key) = self
            .storage
            .get_json::<String>(CUSTOMER_INVITATIONS, pthid)
            .await?
        else {
            return Ok(false);
        };
        let customer: Option<Customer> = self.storage.get_json(CUSTOMERS, &key).await?;
        Ok(customer.is_some_and(|c| {
            c.org_id == org.record.id && c.connection_did.as_deref() != Some(sender)
        }))
    }

    /// The change that marks `message` handled.
    pub(super) fn seen(&self, message: &Message) -> Result<Change, IssuerError> {
        let mut change = Change::default();
        change.mark_seen(message)?;
        Ok(change)
    }
}

/// How a message to an organisation is answered when it cannot be acted on.
pub(crate) enum Answer {
    /// Sent back to the wallet as a problem report (the message itself was fine to receive).
    Problem(String, String),
    /// Refused at the door (the HTTP answer says why).
    Refuse(Refusal),
    /// The change it made lost to a concurrent one; nothing was written ([`Issuer::receive`]
    /// makes it again).
    Raced,
}

impl From<IssuerError> for Answer {
    fn from(error: IssuerError) -> Self {
        if error.is_changed_meanwhile() {
            return Answer::Raced;
        }
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
        Answer::from(IssuerError::from(error))
    }
}

fn api_refusal(error: IssuerError) -> Refusal {
    match error {
        IssuerError::Internal(message) => {
            Refusal::Storage(crate::storage::StorageError::Backend(message))
        }
        other => Refusal::BadRequest(other.to_string()),
    }
}

/// The answer to `message` if it is a trust ping that asks for one (in its thread); a
/// malformed ping is answered with a problem report.
pub(super) fn ping_reply(message: &Message) -> Result<Option<Message>, Answer> {
    if message.type_ != trust_ping::PING {
        return Ok(None);
    }
    trust_ping::reply_to(message).map_err(protocol_problem)
}

pub(super) fn protocol_problem(error: ProtocolError) -> Answer {
    Answer::Problem("e.p.msg.malformed".into(), error.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lanyard_protocol::did::Resolver;
    use lanyard_protocol::didcomm::DidComm;
    use lanyard_protocol::keys::KeyRing;
    use serde_json::json;

    use super::*;
    use crate::issuer::customers::Status;
    use crate::issuer::outbox::tests::{issuer, phone_did};
    use crate::issuer::IssuerLimits;

    #[tokio::test]
    async fn a_malformed_ping_answering_an_invitation_spends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(dir.path(), IssuerLimits::default());
        let (org, _) = issuer.create_org("Acme").await.unwrap();
        let (customer, _) = issuer
            .onboard(
                &org,
                &json!({ "name": "Ada", "medium": "email", "email": "ada@example.com" }),
            )
            .await
            .unwrap();
        // A phone the mediator does not serve: an answer to it cannot be handed over.
        let ring = Arc::new(KeyRing::new());
        let phone = phone_did(&ring, "http://elsewhere.test/didcomm");
        let receive = |body: serde_json::Value| {
            let (issuer, ring, phone, org, pthid) = (
                &issuer,
                ring.clone(),
                phone.clone(),
                org.didcomm_did.clone(),
                customer.invitation_id.clone(),
            );
            async move {
                let ping = Message::new(trust_ping::PING, body)
                    .pthid(pthid)
                    .from(phone.clone())
                    .to([org.clone()]);
                let packed = DidComm::new(ring, Resolver::default())
                    .pack_authcrypt(&ping, &phone, &[&org], false)
                    .await
                    .unwrap();
                let unpacked = DidComm::new(issuer.keys().clone(), Resolver::default())
                    .unpack(&packed)
                    .await
                    .unwrap();
                issuer.receive(unpacked).await
            }
        };
        let outcome = receive(json!({ "response_requested": "yes" })).await;
        assert!(matches!(outcome, Ok(Outcome::Accepted)));
        let unchanged = issuer.customer(&org, &customer.id).await.unwrap();
        assert_eq!(
            unchanged.status, customer.status,
            "the customer was not onboarded"
        );
        assert_eq!(unchanged.connection_did, None);
        assert!(!issuer.connected(&org, &phone).await.unwrap());
        // Answered as a stranger (malformed), not stored: the answer could not be handed over.
        assert_eq!(issuer.outbox_counters().strangers_unreachable.get(), 1);
        assert_eq!(issuer.outbox_len().await.unwrap(), 0);

        // The invitation is still unspent: a well-formed ping connects through it.
        receive(json!({ "response_requested": false }))
            .await
            .unwrap();
        let onboarded = issuer.customer(&org, &customer.id).await.unwrap();
        assert_eq!(onboarded.status, Status::Onboarded);
        assert_eq!(onboarded.connection_did.as_deref(), Some(phone.as_str()));
    }

    #[test]
    fn a_malformed_ping_is_a_malformed_message_problem() {
        let odd = Message::new(trust_ping::PING, json!({ "response_requested": "yes" }));
        match ping_reply(&odd) {
            Err(Answer::Problem(code, comment)) => {
                assert_eq!(code, "e.p.msg.malformed");
                assert!(comment.contains("response_requested"), "{comment}");
            }
            _ => panic!("a malformed ping was answered"),
        }
        let quiet = Message::new(trust_ping::PING, json!({ "response_requested": false }));
        assert!(matches!(ping_reply(&quiet), Ok(None)));
        let asked = Message::new(trust_ping::PING, json!({}));
        let reply = match ping_reply(&asked) {
            Ok(Some(reply)) => reply,
            _ => panic!("a ping asking for an answer got none"),
        };
        assert_eq!(reply.type_, trust_ping::PING_RESPONSE);
        assert_eq!(reply.thid.as_deref(), Some(asked.id.as_str()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_request_at_two_agents_at_once_issues_one_credential() {
        use crate::issuer::records::{credential_key, IssuedCredential, CREDENTIALS};
        use crate::issuer::status_list::{StatusCounter, STATUS_COUNTERS};
        use lanyard_protocol::protocols::issue_credential::{self, Offer};

        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), IssuerLimits::default());
        let (a, b) = (agents.a.clone(), agents.b.clone());
        let (org, _) = a.create_org("Acme").await.unwrap();
        let template = a.create_template(&org, &membership()).await.unwrap();
        let (customer, _) = a
            .onboard(
                &org,
                &json!({ "name": "Ada", "medium": "email", "email": "ada@example.com" }),
            )
            .await
            .unwrap();
        let ring = Arc::new(KeyRing::new());
        let phone = phone_did(&ring, "http://agent.test/didcomm");
        let from_phone = |message: Message| {
            let (ring, phone, org) = (ring.clone(), phone.clone(), org.didcomm_did.clone());
            async move {
                let message = message.from(phone.clone()).to([org.clone()]);
                DidComm::new(ring, Resolver::default())
                    .pack_authcrypt(&message, &phone, &[&org], false)
                    .await
                    .unwrap()
            }
        };
        let unpack = |packed: String| {
            let keys = a.keys().clone();
            async move {
                DidComm::new(keys, Resolver::default())
                    .unpack(&packed)
                    .await
                    .unwrap()
            }
        };
        // `packed` received by both agents at the same instant.
        let at_both = |packed: String| {
            let (a, b) = (a.clone(), b.clone());
            let (at_a, at_b) = (unpack(packed.clone()), unpack(packed));
            async move {
                let (at_a, at_b) = (at_a.await, at_b.await);
                let (outcome_a, outcome_b) = tokio::join!(
                    tokio::spawn(async move { a.receive(at_a).await }),
                    tokio::spawn(async move { b.receive(at_b).await }),
                );
                (outcome_a, outcome_b)
            }
        };
        // The wallet connects through the customer's invitation; its message reaches both
        // agents at once.
        let ping = Message::new(trust_ping::PING, json!({ "response_requested": false }))
            .pthid(customer.invitation_id.clone());
        let packed = from_phone(ping).await;
        let (outcome_a, outcome_b) = at_both(packed).await;
        for outcome in [outcome_a.unwrap(), outcome_b.unwrap()] {
            assert!(matches!(outcome, Ok(Outcome::Accepted)), "{outcome:?}");
        }
        let onboarded = a.customer(&org, &customer.id).await.unwrap();
        assert_eq!(onboarded.status, Status::Onboarded);
        assert_eq!(onboarded.connection_did.as_deref(), Some(phone.as_str()));
        assert_eq!(agents.queue.total(), 0, "nothing was answered to the ping");
        let offered = a
            .offer_to_customer(
                &org,
                &json!({
                    "customerId": customer.id,
                    "templateId": template.template_id,
                    "values": { "level": "gold" }
                }),
            )
            .await
            .unwrap();
        let handed_before = agents.queue.total();

        // Its request reaches both agents at the same instant.
        let request = issue_credential::request_message(&Offer {
            thid: offered.thid.clone(),
            comment: None,
            attributes: vec![],
            descriptions: vec![],
            detail: offered.detail.clone(),
        });
        let packed = from_phone(request).await;
        let (outcome_a, outcome_b) = at_both(packed).await;
        // Both take it (the wallet sent it once; whichever agent lost the race sees it done).
        for outcome in [outcome_a.unwrap(), outcome_b.unwrap()] {
            assert!(matches!(outcome, Ok(Outcome::Accepted)), "{outcome:?}");
        }
        let key = credential_key(&org.record.id, &offered.thid);
        let record: IssuedCredential = agents
            .storage
            .get_json(CREDENTIALS, &key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, CredentialState::Issued);
        let template = a.template(&org, &template.template_id).await.unwrap();
        assert_eq!((template.total_offered, template.total_issued), (1, 1));
        let counter: StatusCounter = agents
            .storage
            .get_json(STATUS_COUNTERS, &org.record.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counter.next, 1, "one status list index handed out");
        // One hand-over: the credential, once.
        assert_eq!(agents.queue.total(), handed_before + 1);
        let envelopes = agents.queue.envelopes.lock().unwrap().clone();
        let (to, issued) = envelopes.last().unwrap().clone();
        assert_eq!(to, phone);
        let issued = DidComm::new(ring.clone(), Resolver::default())
            .unpack(&issued)
            .await
            .unwrap()
            .message;
        assert_eq!(issued.type_, issue_credential::ISSUE);
        let (thid, credential) = issue_credential::parse_issue(&issued).unwrap();
        assert_eq!(thid, offered.thid);
        assert_eq!(Some(credential), record.credential);
        assert_eq!(a.outbox_len().await.unwrap(), 0);
    }

    /// A template with one custom field, `level`.
    fn membership() -> serde_json::Value {
        json!({
            "templateName": "Membership",
            "credentialIssuer": "Acme",
            "credentialType": "Membership",
            "logoURL": "https://example.com/logo.png",
            "credentialExpiration": null,
            "customFields": ["level"],
            "descriptions": ["Level"],
            "numberOfCredentials": null
        })
    }

    /// A customer of `org` whose wallet (a fresh one) connected through `issuer`; the wallet's
    /// DID.
    async fn connected_customer(
        issuer: &crate::testing::SharedIssuer,
        org: &Org,
        name: &str,
    ) -> (Customer, String) {
        let (customer, _) = issuer
            .onboard(
                org,
                &json!({ "name": name, "medium": "email", "email": "someone@example.com" }),
            )
            .await
            .unwrap();
        let (phone, packed) = crate::issuer::outbox::tests::connecting_ping(
            &org.didcomm_did,
            &customer.invitation_id,
            "http://agent.test/didcomm",
        )
        .await;
        // This agent's ring may not hold the organisation's keys yet (the router loads them
        // on an envelope it cannot open; here the test unpacks itself).
        issuer.org(&org.record.id).await.unwrap();
        let unpacked = DidComm::new(issuer.keys().clone(), Resolver::default())
            .unpack(&packed)
            .await
            .unwrap();
        issuer.receive(unpacked).await.unwrap();
        (customer, phone)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offers_at_two_agents_at_once_take_distinct_status_indexes() {
        use crate::issuer::status_list::{StatusCounter, STATUS_COUNTERS};
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), IssuerLimits::default());
        let (a, b) = (agents.a.clone(), agents.b.clone());
        let (org, _) = a.create_org("Acme").await.unwrap();
        let template = a.create_template(&org, &membership()).await.unwrap();
        let (ada, _) = connected_customer(&a, &org, "Ada").await;
        let (bea, _) = connected_customer(&b, &org, "Bea").await;
        let offer = |customer: &Customer| {
            json!({
                "customerId": customer.id,
                "templateId": template.template_id,
                "values": { "level": "gold" }
            })
        };
        // Every offer of the organisation takes the next index of its one status list.
        for _ in 0..5 {
            let (to_ada, to_bea) = (offer(&ada), offer(&bea));
            let (at_a, at_b) = tokio::join!(
                tokio::spawn({
                    let (a, org) = (a.clone(), org.clone());
                    async move { a.offer_to_customer(&org, &to_ada).await }
                }),
                tokio::spawn({
                    let (b, org) = (b.clone(), org.clone());
                    async move { b.offer_to_customer(&org, &to_bea).await }
                }),
            );
            let (at_a, at_b) = (at_a.unwrap().unwrap(), at_b.unwrap().unwrap());
            assert_ne!(at_a.status_index, at_b.status_index);
        }
        let mut indexes: Vec<u64> = a
            .credential_exchanges(&org)
            .await
            .unwrap()
            .iter()
            .map(|c| c.status_index)
            .collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..10).collect::<Vec<u64>>());
        let counter: StatusCounter = agents
            .storage
            .get_json(STATUS_COUNTERS, &org.record.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(counter.next, 10);
        let template = a.template(&org, &template.template_id).await.unwrap();
        assert_eq!(template.total_offered, 10);
    }
}
