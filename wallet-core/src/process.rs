//! What the wallet does with each message it picks up, and the customer's decisions (accept
//! or decline an offer, answer or decline a verifier). Every handler is idempotent: a message
//! redelivered after a crash changes nothing more.

use serde_json::Value;

use super::records::fields_of;
use super::{
    Connection, OfferRecord, OfferState, RequestRecord, RequestState, StoredCredential, SyncReport,
    Wallet, WalletError, WalletEvent, CREDENTIALS, OFFERS, REQUESTS,
};
use lanyard_protocol::credentials::vc;
use lanyard_protocol::did::did_of;
use lanyard_protocol::didcomm::{now, Message};
use lanyard_protocol::protocols::out_of_band::Invitation;
use lanyard_protocol::protocols::report_problem::{self, ProblemReport};
use lanyard_protocol::protocols::{deletion, issue_credential, present_proof, trust_ping};

/// Inbound message ids already processed.
const SEEN: &str = "seen";

/// A problem report in thread `thid`.
fn problem_report(thid: &str, code: &str, comment: &str) -> Message {
    report_problem::problem_report_message(&ProblemReport::new(code, comment)).thid(thid)
}

impl Wallet {
    /// Unpacks and handles one picked-up envelope.
    pub(super) async fn receive(
        &self,
        envelope: &str,
        report: &mut SyncReport,
    ) -> Result<(), WalletError> {
        let unpacked = match self.didcomm.unpack(envelope).await {
            Ok(unpacked) => unpacked,
            Err(error) => {
                report.refused += 1;
                self.emit(WalletEvent::Problem {
                    message: format!("a message could not be read: {error}"),
                });
                return Ok(());
            }
        };
        let Some(sender) = unpacked.metadata.authcrypt_sender_did() else {
            report.refused += 1;
            self.emit(WalletEvent::Problem {
                message: "a message without a known sender was ignored".into(),
            });
            return Ok(());
        };
        // Which of our DIDs it was encrypted to: one organisation may have several
        // connections with this wallet, one per invitation, all with the same DID of theirs.
        let recipient = unpacked
            .metadata
            .recipient_kid()
            .map(|kid| did_of(kid).to_string());
        let message = unpacked.message;
        if self.store.contains(SEEN, &message.id)? {
            report.duplicates += 1;
            return Ok(());
        }
        let handled = self.handle(&sender, recipient.as_deref(), &message).await;
        match handled {
            Ok(()) => report.processed += 1,
            // Not marked handled, so not acknowledged: the message comes again on the next
            // sync and the step that could not reach its peer is tried again.
            Err(WalletError::Storage(error)) => return Err(WalletError::Storage(error)),
            Err(WalletError::Unreachable(peer)) => return Err(WalletError::Unreachable(peer)),
            Err(error) => {
                report.refused += 1;
                tracing::info!(message = %message.id, %error, "message refused");
                self.emit(WalletEvent::Problem {
                    message: error.to_string(),
                });
            }
        }
        self.store.put(SEEN, &message.id, b"1")?;
        Ok(())
    }

    async fn handle(
        &self,
        sender: &str,
        recipient: Option<&str>,
        message: &Message,
    ) -> Result<(), WalletError> {
        let connection = self.connection_between(recipient, sender)?;
        match (message.type_.as_str(), connection) {
            (present_proof::ACK, _) => self.presentation_result(sender, message),
            (trust_ping::PING_RESPONSE, Some(_)) => Ok(()),
            (issue_credential::OFFER, Some(connection)) => self.offer(&connection, message).await,
            (issue_credential::ISSUE, Some(connection)) => {
                self.credential_issued(&connection, message).await
            }
            (deletion::NOTICE, Some(connection)) => self.deletion(&connection, message),
            (present_proof::REQUEST, Some(_)) => {
                self.record_request(sender, message, None).await?;
                Ok(())
            }
            (report_problem::PROBLEM_REPORT, _) => self.problem_reported(message),
            (_, None) => Err(WalletError::Refused(
                sender.to_string(),
                "a message from a DID this wallet has no connection with was ignored".into(),
            )),
            (other, Some(connection)) => Err(WalletError::Refused(
                connection.label,
                format!("sent a {other} message, which this wallet does not handle"),
            )),
        }
    }

    async fn offer(&self, connection: &Connection, message: &Message) -> Result<(), WalletError> {
        let offer = issue_credential::parse_offer(message)
            .map_err(|e| WalletError::Refused(connection.label.clone(), e.to_string()))?;
        if let Some(existing) = self.store.get_json::<OfferRecord>(OFFERS, &offer.thid)? {
            // Redelivered: a crash may have come between storing it and asking for it.
            if existing.state == OfferState::Pending
                && self.auto_accept.load(std::sync::atomic::Ordering::Relaxed)
            {
                self.request_credential(&existing).await?;
            }
            return Ok(());
        }
        let record = OfferRecord {
            id: offer.thid.clone(),
            connection_id: connection.id.clone(),
            issuer_name: connection.label.clone(),
            comment: offer.comment,
            attributes: offer.attributes,
            descriptions: offer.descriptions,
            detail: offer.detail,
            state: OfferState::Pending,
            received_at: now(),
        };
        self.store.put_json(OFFERS, &record.id, &record)?;
        self.emit(WalletEvent::OfferReceived {
            offer_id: record.id.clone(),
            issuer_name: record.issuer_name.clone(),
        });
        if self.auto_accept.load(std::sync::atomic::Ordering::Relaxed) {
            self.request_credential(&record).await?;
        }
        Ok(())
    }

    fn offer_record(&self, id: &str) -> Result<OfferRecord, WalletError> {
        self.store
            .get_json(OFFERS, id)?
            .ok_or_else(|| WalletError::NotFound {
                what: "offer",
                id: id.to_string(),
            })
    }

    fn connection(&self, id: &str) -> Result<Connection, WalletError> {
        self.store
            .get_json(super::CONNECTIONS, id)?
            .ok_or_else(|| WalletError::NotFound {
                what: "connection",
                id: id.to_string(),
            })
    }

    async fn request_credential(&self, record: &OfferRecord) -> Result<(), WalletError> {
        let connection = self.connection(&record.connection_id)?;
        let offer = issue_credential::Offer {
            thid: record.id.clone(),
            comment: record.comment.clone(),
            attributes: record.attributes.clone(),
            descriptions: record.descriptions.clone(),
            detail: record.detail.clone(),
        };
        self.send(
            &connection.my_did,
            &connection.their_did,
            issue_credential::request_message(&offer),
        )
        .await?;
        let mut requested = record.clone();
        requested.state = OfferState::Requested;
        self.store.put_json(OFFERS, &requested.id, &requested)?;
        Ok(())
    }

    /// Accepts an offer: asks the issuer for the credential, which arrives on a later sync.
    pub async fn accept_offer(&self, id: &str) -> Result<(), WalletError> {
        let _busy = self.busy.lock().await;
        let record = self.offer_record(id)?;
        match record.state {
            OfferState::Pending | OfferState::Requested => self.request_credential(&record).await,
            other => Err(WalletError::WrongState {
                what: "offer",
                id: id.to_string(),
                why: format!("it is {other:?}"),
            }),
        }
    }

    /// Declines an offer and tells the issuer.
    pub async fn decline_offer(&self, id: &str) -> Result<(), WalletError> {
        let _busy = self.busy.lock().await;
        let mut record = self.offer_record(id)?;
        if record.state != OfferState::Pending {
            return Err(WalletError::WrongState {
                what: "offer",
                id: id.to_string(),
                why: format!("it is {:?}", record.state),
            });
        }
        let connection = self.connection(&record.connection_id)?;
        self.send(
            &connection.my_did,
            &connection.their_did,
            problem_report(id, "e.p.req.declined", "the customer declined the offer"),
        )
        .await?;
        record.state = OfferState::Declined;
        self.store.put_json(OFFERS, id, &record)?;
        Ok(())
    }

    /// A credential arrived: it must be what was offered, over this connection, about this
    /// connection's DID, with a valid proof by its issuer; then it is stored and acknowledged.
    async fn credential_issued(
        &self,
        connection: &Connection,
        message: &Message,
    ) -> Result<(), WalletError> {
        let (thid, credential) = issue_credential::parse_issue(message)
            .map_err(|e| WalletError::BadCredential(e.to_string()))?;
        let record = self
            .offer_record(&thid)
            .ok()
            .filter(|o| o.connection_id == connection.id);
        let Some(mut record) = record else {
            return self
                .refuse_credential(
                    connection,
                    &thid,
                    "no offer of this wallet is answered by it".into(),
                )
                .await;
        };
        let id = credential
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if record.state == OfferState::Done && self.store.contains(CREDENTIALS, &id)? {
            // Redelivered after a crash before the ack: ack again, store nothing more.
            self.send(
                &connection.my_did,
                &connection.their_did,
                issue_credential::ack_message(&thid),
            )
            .await?;
            return Ok(());
        }
        let mut unsigned = credential.clone();
        if let Some(object) = unsigned.as_object_mut() {
            object.remove("proof");
        }
        if record.detail.get("credential") != Some(&unsigned) {
            return self
                .refuse_credential(
                    connection,
                    &thid,
                    "the credential is not the one that was offered".into(),
                )
                .await;
        }
        let verified = match vc::verify_credential(&credential, self.resolver.as_ref(), now()).await
        {
            Ok(verified) => verified,
            Err(error) => {
                return self
                    .refuse_credential(connection, &thid, error.to_string())
                    .await
            }
        };
        if verified.subject_id != connection.my_did {
            return self
                .refuse_credential(
                    connection,
                    &thid,
                    "the credential is about another DID than this connection's".into(),
                )
                .await;
        }
        if verified.id.as_deref().unwrap_or("").is_empty() {
            return self
                .refuse_credential(connection, &thid, "the credential has no id".into())
                .await;
        }
        for required in ["credentialIssuer", "credentialType"] {
            if !verified.claims.contains_key(required) {
                return self
                    .refuse_credential(
                        connection,
                        &thid,
                        format!("the credential lacks the field {required}"),
                    )
                    .await;
            }
        }
        let stored = StoredCredential {
            id: id.clone(),
            connection_id: connection.id.clone(),
            issuer_did: verified.issuer.clone(),
            issuer_name: verified
                .issuer_name
                .clone()
                .unwrap_or_else(|| connection.label.clone()),
            name: verified.name.clone(),
            template_id: verified.template_id.clone(),
            fields: fields_of(&verified.claims, &record.descriptions),
            valid_from: verified.valid_from,
            valid_until: verified.valid_until,
            credential,
            stored_at: now(),
        };
        self.store.put_json(CREDENTIALS, &id, &stored)?;
        record.state = OfferState::Done;
        self.store.put_json(OFFERS, &record.id, &record)?;
        self.emit(WalletEvent::CredentialStored {
            credential_id: id,
            issuer_name: stored.issuer_name,
        });
        self.send(
            &connection.my_did,
            &connection.their_did,
            issue_credential::ack_message(&thid),
        )
        .await?;
        Ok(())
    }

    /// Tells the issuer why its credential was refused; nothing is stored.
    async fn refuse_credential(
        &self,
        connection: &Connection,
        thid: &str,
        why: String,
    ) -> Result<(), WalletError> {
        let _ = self
            .send(
                &connection.my_did,
                &connection.their_did,
                problem_report(thid, "e.p.msg.bad-credential", &why),
            )
            .await;
        Err(WalletError::BadCredential(why))
    }

    /// A deletion notice removes the credentials of that template issued over this
    /// connection, and only those.
    fn deletion(&self, connection: &Connection, message: &Message) -> Result<(), WalletError> {
        let notice = deletion::parse_notice(message)
            .map_err(|e| WalletError::Refused(connection.label.clone(), e.to_string()))?;
        let mut removed = 0;
        let mut foreign = 0;
        for id in &notice.credential_ids {
            match self.store.get_json::<StoredCredential>(CREDENTIALS, id)? {
                Some(credential)
                    if credential.connection_id == connection.id
                        && credential.template_id.as_deref()
                            == Some(notice.template_id.as_str()) =>
                {
                    self.store.delete(CREDENTIALS, id)?;
                    removed += 1;
                }
                Some(_) => foreign += 1,
                None => {}
            }
        }
        if removed > 0 {
            tracing::info!(template = %notice.template_id, removed, "credentials removed by their issuer");
            self.emit(WalletEvent::CredentialsRemoved {
                template_id: Some(notice.template_id.clone()),
                count: removed,
            });
        }
        if foreign > 0 {
            return Err(WalletError::Refused(
                connection.label.clone(),
                format!("asked to remove {foreign} credential(s) it did not issue; they were kept"),
            ));
        }
        Ok(())
    }

    fn problem_reported(&self, message: &Message) -> Result<(), WalletError> {
        // Shown even when the report is malformed: it is the peer's word for what went wrong.
        let comment = report_problem::comment_of(message)
            .unwrap_or("a problem")
            .to_string();
        if let Some(thid) = &message.thid {
            if let Ok(mut offer) = self.offer_record(thid) {
                if offer.state != OfferState::Done {
                    offer.state = OfferState::Declined;
                    self.store.put_json(OFFERS, thid, &offer)?;
                }
            }
        }
        self.emit(WalletEvent::Problem { message: comment });
        Ok(())
    }

    /// Records a verifier's request (from an invitation or over a connection), with the
    /// identity the wallet can prove: the verifier's DID (the answer is encrypted to it) and
    /// the request's domain when the answer goes to that host (see [`verified_domain`]). The
    /// invitation's label is only what the verifier calls itself.
    pub(super) async fn record_request(
        &self,
        verifier: &str,
        message: &Message,
        invitation: Option<&Invitation>,
    ) -> Result<RequestRecord, WalletError> {
        let request = present_proof::parse_request(message)
            .map_err(|e| WalletError::InvalidInvitation(e.to_string()))?;
        if let Some(existing) = self
            .store
            .get_json::<RequestRecord>(REQUESTS, &request.thid)?
        {
            // The same request from another DID is someone passing a verifier's request off
            // as its own (or the verifier's own, after such a copy): answering it could send
            // the presentation to the wrong party, so it is refused.
            if existing.verifier_did != verifier {
                return Err(WalletError::Refused(
                    verifier.to_string(),
                    format!(
                        "this request was already received from another verifier ({}); it is not answered",
                        existing.verifier_did
                    ),
                ));
            }
            return Ok(existing);
        }
        let verified_domain = self.verified_domain(verifier, &request.domain).await;
        let label = invitation.and_then(|i| i.label.clone());
        let record = RequestRecord {
            id: request.thid.clone(),
            verifier_did: verifier.to_string(),
            verifier_name: label.unwrap_or(request.verifier_name),
            purpose: request.purpose,
            template_id: request.template_id,
            required_fields: request.required_fields,
            challenge: request.challenge,
            domain: request.domain,
            verified_domain,
            invitation_id: invitation.map(|i| i.id.clone()),
            state: RequestState::Pending,
            outcome: Vec::new(),
            received_at: now(),
        };
        self.store.put_json(REQUESTS, &record.id, &record)?;
        self.emit(WalletEvent::PresentationRequested {
            request_id: record.id.clone(),
            verifier_name: record.verifier_name.clone(),
        });
        Ok(record)
    }

    /// `domain` when the verifier `did` is reachable only through it: its first DIDComm
    /// service (the one [`lanyard_protocol::didcomm::DidComm::pack_for_delivery`] sends to) is an HTTP
    /// endpoint on that host, or it is a `did:web` of that host (its document is served there).
    /// Anything else, a DID that cannot be resolved included, proves no domain: `None`.
    async fn verified_domain(&self, did: &str, domain: &str) -> Option<String> {
        use lanyard_protocol::did::DidResolver;
        if domain.is_empty() {
            return None;
        }
        let host = if did.starts_with("did:web:") {
            lanyard_protocol::did::did_web_document_url(did).ok()
        } else {
            let doc = self.resolver.resolve(did).await.ok()?;
            doc.didcomm_services().into_iter().next().map(|s| s.uri)
        };
        host.as_deref()
            .and_then(url_authority)
            .filter(|authority| authority.eq_ignore_ascii_case(domain))
            .map(|_| domain.to_string())
    }

    fn request_record(&self, id: &str) -> Result<RequestRecord, WalletError> {
        self.store
            .get_json(REQUESTS, id)?
            .ok_or_else(|| WalletError::NotFound {
                what: "presentation request",
                id: id.to_string(),
            })
    }

    /// Answers a verifier with the chosen credentials (only those go out), signed by the key of
    /// the connection they were issued to.
    pub async fn present(
        &self,
        request_id: &str,
        credential_ids: &[String],
    ) -> Result<(), WalletError> {
        let _busy = self.busy.lock().await;
        let mut record = self.request_record(request_id)?;
        if record.state != RequestState::Pending {
            return Err(WalletError::WrongState {
                what: "presentation request",
                id: request_id.to_string(),
                why: format!("it was answered already ({:?})", record.state),
            });
        }
        if credential_ids.is_empty() {
            return Err(WalletError::WrongState {
                what: "presentation request",
                id: request_id.to_string(),
                why: "choose at least one credential".into(),
            });
        }
        let mut chosen = Vec::new();
        for id in credential_ids {
            let credential = self.credential(id)?;
            if !record.matches(&credential) {
                return Err(WalletError::WrongState {
                    what: "credential",
                    id: id.clone(),
                    why: "it is not what the verifier asks for".into(),
                });
            }
            chosen.push(credential);
        }
        let connection = self.connection(&chosen[0].connection_id)?;
        if chosen.iter().any(|c| c.connection_id != connection.id) {
            return Err(WalletError::WrongState {
                what: "presentation request",
                id: request_id.to_string(),
                why: "credentials from different issuers' connections go in separate answers"
                    .into(),
            });
        }
        let (key, method) = self.signing_key(&connection.my_did)?;
        let credentials: Vec<Value> = chosen.iter().map(|c| c.credential.clone()).collect();
        let vp = vc::present(
            &credentials,
            &connection.my_did,
            &self.keys,
            &key,
            &method,
            &record.challenge,
            &record.domain,
            now(),
        )
        .map_err(|e| WalletError::BadCredential(e.to_string()))?;
        let request = present_proof::PresentationRequest {
            thid: record.id.clone(),
            verifier_name: record.verifier_name.clone(),
            purpose: record.purpose.clone(),
            template_id: record.template_id.clone(),
            required_fields: record.required_fields.clone(),
            challenge: record.challenge.clone(),
            domain: record.domain.clone(),
        };
        let mut message = present_proof::presentation_message(&request, vp);
        if let Some(invitation) = &record.invitation_id {
            message = message.pthid(invitation.clone());
        }
        self.send(&connection.my_did, &record.verifier_did, message)
            .await?;
        record.state = RequestState::Sent;
        self.store.put_json(REQUESTS, &record.id, &record)?;
        self.emit(WalletEvent::PresentationSent {
            request_id: record.id.clone(),
        });
        Ok(())
    }

    /// Declines a verifier's request (nothing is sent but the refusal).
    pub async fn decline_request(&self, request_id: &str) -> Result<(), WalletError> {
        let _busy = self.busy.lock().await;
        let mut record = self.request_record(request_id)?;
        if record.state != RequestState::Pending {
            return Err(WalletError::WrongState {
                what: "presentation request",
                id: request_id.to_string(),
                why: format!("it was answered already ({:?})", record.state),
            });
        }
        record.state = RequestState::Declined;
        self.store.put_json(REQUESTS, &record.id, &record)?;
        Ok(())
    }

    /// The verifier's answer to a presentation.
    fn presentation_result(&self, sender: &str, message: &Message) -> Result<(), WalletError> {
        let thid = message.thid.clone().unwrap_or_default();
        let mut record = self.request_record(&thid)?;
        if record.verifier_did != sender {
            return Err(WalletError::Refused(
                sender.to_string(),
                "answered a presentation it did not ask for".into(),
            ));
        }
        let verified = message.body["status"] == "OK";
        let reasons: Vec<String> = message.body["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        record.state = if verified {
            RequestState::Verified
        } else {
            RequestState::Failed
        };
        record.outcome = reasons.clone();
        self.store.put_json(REQUESTS, &record.id, &record)?;
        self.emit(WalletEvent::PresentationResult {
            request_id: record.id,
            verified,
            reasons,
        });
        Ok(())
    }
}

/// The `host[:port]` of an `http(s)` URL; `None` for other schemes and for URLs with user
/// information (which could make a host look like another).
fn url_authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::url_authority;

    #[test]
    fn the_authority_of_a_url_is_its_host_and_port() {
        assert_eq!(
            url_authority("https://bank.example/didcomm"),
            Some("bank.example")
        );
        assert_eq!(
            url_authority("http://127.0.0.1:8080?x=1"),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            url_authority("https://bank.example@evil.example/"),
            None,
            "user information is refused"
        );
        assert_eq!(url_authority("ws://bank.example/"), None);
        assert_eq!(url_authority("did:peer:2.Ez6"), None);
        assert_eq!(url_authority("https:///didcomm"), None);
    }
}
