//! Verifications (DESIGN §3 "Present"): an organisation asks for a credential of one of its
//! templates with some fields; the request travels as an OOB invitation carrying a Present
//! Proof 3.0 `request-presentation` with a fresh challenge and the agent's domain (URL, QR,
//! deep link). The wallet's `presentation` is checked — the holder's proof with that challenge
//! and domain, each credential's proof against its issuer's did:web, its validity period, its
//! status list entry, its template and the required fields — and recorded `verified` or
//! `failed` with the reasons and the disclosed values. A request is answered once.

use lanyard_protocol::credentials::status_list::is_set;
use lanyard_protocol::credentials::vc::{
    read_credential, verify_credential, verify_presentation, VerifiedCredential,
};
use lanyard_protocol::did::{
    did_web_document_url, DidDocument, DidError, DidResolver, HttpResolver,
};
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::net::Request;
use lanyard_protocol::protocols::present_proof::{self, PresentationRequest};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::inbound::Answer;
use super::outbox::Change;
use super::store::{Expect, IssuerStorage, IssuerStorageExt, Write};
use super::templates::json_type;
use super::time::now_ms;
use super::{new_object_id, Issuer, IssuerError, Org};
use crate::invitations::NewInvitation;

pub(crate) const VERIFICATIONS: &str = "verifications";

/// Waiters for verification outcomes one agent holds at once ([`Issuer::wait_for_verification`]).
pub const MAX_VERIFICATION_WAITERS: usize = 1024;
/// The longest one wait for a verification's outcome lasts.
pub const MAX_VERIFICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a waiter reads the store: another agent on it may record the outcome.
const VERIFICATION_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Request message id → verification key.
const VERIFICATION_REQUESTS: &str = "verification_requests";

/// Where a verification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationState {
    /// Waiting for the wallet's presentation.
    Pending,
    /// A credential of the template was presented and verified.
    Verified,
    /// The presentation did not verify; `reasons` say why.
    Failed,
}

/// A verification request and, once answered, its outcome. `Debug` redacts the disclosed
/// values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// 24 hex digits.
    pub id: String,
    /// The organisation that asked.
    pub org_id: String,
    /// Its storage key.
    pub key: String,
    /// The template whose credential is asked for.
    pub template_id: String,
    /// Fields the credential must disclose.
    pub required_fields: Vec<String>,
    /// What the holder is told the verification is for.
    pub purpose: String,
    /// The nonce the presentation must sign.
    pub challenge: String,
    /// The domain the presentation must name.
    pub domain: String,
    /// The request message's id (the presentation's `thid`).
    pub request_id: String,
    /// The short code of its invitation.
    pub invitation_code: String,
    /// The invitation's message id (the wallet's `pthid`).
    pub invitation_id: String,
    /// Where it stands.
    pub state: VerificationState,
    /// Why it failed, when it did.
    pub reasons: Vec<String>,
    /// The credential subject's values the presentation disclosed.
    pub disclosed: Map<String, Value>,
    /// The DID that presented.
    pub holder: Option<String>,
    /// The id of the credential presented.
    pub credential_id: Option<String>,
    /// Its issuer.
    pub issuer: Option<String>,
    /// When it was asked for (ms since the epoch).
    pub created_ms: u64,
    /// When it was answered (ms since the epoch).
    pub completed_ms: Option<u64>,
}

impl VerificationState {
    /// The state a query names (`pending`, `verified` or `failed`).
    pub fn parse(text: &str) -> Option<VerificationState> {
        match text {
            "pending" => Some(VerificationState::Pending),
            "verified" => Some(VerificationState::Verified),
            "failed" => Some(VerificationState::Failed),
            _ => None,
        }
    }
}

lanyard_protocol::redacted_debug!(Verification {
    shown: [
        id,
        org_id,
        key,
        template_id,
        required_fields,
        purpose,
        challenge,
        domain,
        request_id,
        invitation_code,
        invitation_id,
        state,
        reasons,
        holder,
        credential_id,
        issuer,
        created_ms,
        completed_ms
    ],
    redacted: [disclosed],
});

/// The host (and port) of a base URL: the `domain` proofs are bound to.
fn domain_of(public_url: &str) -> String {
    public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Why a presentation is refused as relayed: its holder proves possession of the holder's key
/// only to whoever asked (the challenge and domain), so whoever hands it over must be the holder
/// itself. A party that forwards someone else's presentation from its own DID (authcrypt
/// sender) is refused before anything is fetched or checked.
fn relayed(sender: &str, vp: &Value) -> Option<String> {
    match vp.get("holder").and_then(Value::as_str) {
        Some(holder) if holder == sender => None,
        Some(holder) => Some(format!(
            "the presentation was sent by {sender}, not by its holder {holder}: a relayed presentation is refused"
        )),
        None => Some("the presentation names no holder".into()),
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Creates a verification request: `{templateId, requiredFields?, purpose?}`.
    pub async fn create_verification(
        &self,
        org: &Org,
        body: &Value,
    ) -> Result<(Verification, Value), IssuerError> {
        let Value::Object(body) = body else {
            return Err(IssuerError::bad_request("the body must be a JSON object"));
        };
        if let Some(unknown) = body
            .keys()
            .find(|k| !["templateId", "requiredFields", "purpose"].contains(&k.as_str()))
        {
            return Err(IssuerError::field(
                unknown,
                "is not a verification field (templateId, requiredFields, purpose)",
            ));
        }
        let template_id = match body.get("templateId") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim(),
            None | Some(Value::Null) => {
                return Err(IssuerError::field("templateId", "is required"))
            }
            Some(_) => {
                return Err(IssuerError::field(
                    "templateId",
                    "must be a template id string",
                ))
            }
        };
        let template = self.template(org, template_id).await.map_err(|_| {
            IssuerError::not_found(&format!(
                "templateId: no template has the id {template_id:?}"
            ))
        })?;
        let fields = template.fields();
        let required_fields = match body.get("requiredFields") {
            None | Some(Value::Null) => fields
                .iter()
                .filter(|(_, _, optional)| !optional)
                .map(|(name, _, _)| name.clone())
                .collect(),
            Some(Value::Array(items)) => {
                let mut names = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    let at = format!("requiredFields[{index}]");
                    let name = item.as_str().ok_or_else(|| {
                        IssuerError::field(
                            &at,
                            &format!("must be a string, not {}", json_type(item)),
                        )
                    })?;
                    if !fields.iter().any(|(field, _, _)| field == name) {
                        return Err(IssuerError::field(
                            &at,
                            &format!("{name:?} is not a field of template {template_id}"),
                        ));
                    }
                    if !names.iter().any(|n: &String| n == name) {
                        names.push(name.to_string());
                    }
                }
                names
            }
            Some(other) => {
                return Err(IssuerError::field(
                    "requiredFields",
                    &format!("must be an array of field names, not {}", json_type(other)),
                ))
            }
        };
        let purpose = match body.get("purpose") {
            None | Some(Value::Null) => format!(
                "{} asks to see your {}",
                org.record.name, template.spec.name
            ),
            Some(Value::String(text)) if text.chars().count() <= 200 => text.clone(),
            Some(_) => {
                return Err(IssuerError::field(
                    "purpose",
                    "must be a string of at most 200 characters",
                ))
            }
        };
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let request = PresentationRequest {
            thid: uuid::Uuid::new_v4().to_string(),
            verifier_name: org.record.name.clone(),
            purpose: purpose.clone(),
            template_id: template.template_id.clone(),
            required_fields: required_fields.clone(),
            challenge: lanyard_protocol::encoding::b64u_encode(nonce),
            domain: domain_of(&self.public_url),
        };
        let message = present_proof::request_message(&request).from(org.didcomm_did.clone());
        let invitation = NewInvitation {
            from: org.didcomm_did.clone(),
            goal_code: Some("request-proof".into()),
            goal: Some(purpose.clone()),
            label: Some(org.record.name.clone()),
            attachments: vec![serde_json::to_value(&message)
                .map_err(|e| IssuerError::internal(&e.to_string()))?],
            expires_time: None,
            single_use: true,
        }
        .build()
        .map_err(|e| IssuerError::internal(&e.to_string()))?;
        self.invitations()?.put(&invitation).await?;
        let now = now_ms();
        let id = new_object_id();
        let key = format!("{}/{now:016x}{}", org.record.id, &id[..8]);
        let verification = Verification {
            id,
            org_id: org.record.id.clone(),
            key: key.clone(),
            template_id: template.template_id.clone(),
            required_fields,
            purpose,
            challenge: request.challenge,
            domain: request.domain,
            request_id: request.thid.clone(),
            invitation_code: invitation.code.clone(),
            invitation_id: invitation.message.id.clone(),
            state: VerificationState::Pending,
            reasons: Vec::new(),
            disclosed: Map::new(),
            holder: None,
            credential_id: None,
            issuer: None,
            created_ms: now,
            completed_ms: None,
        };
        self.storage
            .apply(
                vec![],
                vec![
                    Write::put(VERIFICATIONS, &key, &verification)?,
                    Write::put(VERIFICATION_REQUESTS, &request.thid, &key)?,
                ],
            )
            .await?;
        Ok((verification, self.invitation_links(&invitation)))
    }

    /// A verification of `org` by id.
    pub async fn verification(&self, org: &Org, id: &str) -> Result<Verification, IssuerError> {
        let all: Vec<Verification> = self
            .storage
            .scan_json(VERIFICATIONS, &format!("{}/", org.record.id), 0, usize::MAX)
            .await?;
        all.into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| IssuerError::not_found(&format!("no verification has the id {id:?}")))
    }

    /// `org`'s verification `id` once it is answered, or as it stands after `wait` (at most
    /// [`MAX_VERIFICATION_WAIT`]): a page showing the outcome live asks again. The outcome is
    /// read from the store (another agent may record it), at once when this agent records it.
    /// Beyond [`MAX_VERIFICATION_WAITERS`] waiting, a wait answers at once with what is stored.
    pub async fn wait_for_verification(
        &self,
        org: &Org,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<Verification, IssuerError> {
        let first = self.verification(org, id).await?;
        if first.state != VerificationState::Pending || wait.is_zero() {
            return Ok(first);
        }
        let Ok(_permit) = self.verification_waiters.clone().try_acquire_owned() else {
            return Ok(first);
        };
        let deadline = tokio::time::Instant::now() + wait.min(MAX_VERIFICATION_WAIT);
        loop {
            let notified = self.verification_waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let current: Verification = self
                .storage
                .get_json(VERIFICATIONS, &first.key)
                .await?
                .ok_or_else(|| {
                    IssuerError::not_found(&format!("no verification has the id {id:?}"))
                })?;
            let now = tokio::time::Instant::now();
            if current.state != VerificationState::Pending || now >= deadline {
                return Ok(current);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + VERIFICATION_POLL), notified).await;
        }
    }

    /// One page of `org`'s verifications, oldest first, in `state` if given, and how many
    /// there are.
    pub async fn verifications(
        &self,
        org: &Org,
        state: Option<VerificationState>,
        page: usize,
        page_size: usize,
    ) -> Result<(Vec<Verification>, usize), IssuerError> {
        let prefix = format!("{}/", org.record.id);
        let skip = (page - 1).saturating_mul(page_size);
        Ok(self
            .storage
            .filter_json(
                VERIFICATIONS,
                &prefix,
                |v: &Verification| state.is_none_or(|s| v.state == s),
                skip,
                page_size,
            )
            .await?)
    }

    /// A wallet's `presentation`: check it, record the outcome, answer the wallet.
    pub(crate) async fn presentation(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
    ) -> Result<(), Answer> {
        let (thid, vp) = present_proof::parse_presentation(message)
            .map_err(|e| Answer::Problem("e.p.msg.malformed".into(), e.to_string()))?;
        let key: Option<String> = self.storage.get_json(VERIFICATION_REQUESTS, &thid).await?;
        let record: Option<Verification> = match key {
            Some(key) => self.storage.get_json(VERIFICATIONS, &key).await?,
            None => None,
        };
        let Some(record) = record.filter(|r| r.org_id == org.record.id) else {
            return Err(Answer::Problem(
                "e.p.req.unknown-request".into(),
                format!("{} made no presentation request {thid}", org.record.name),
            ));
        };
        if record.state != VerificationState::Pending {
            return Err(Answer::Problem(
                "e.p.req.already-answered".into(),
                "this presentation request was answered already".into(),
            ));
        }
        let now = now_ms();
        let outcome = match relayed(sender, &vp) {
            Some(reason) => Err(vec![reason]),
            None => self.check_presentation(org, &record, &vp, now / 1000).await,
        };
        let before =
            serde_json::to_vec(&record).map_err(|e| IssuerError::internal(&e.to_string()))?;
        let mut done = record.clone();
        done.completed_ms = Some(now);
        match outcome {
            Ok(credential) => {
                done.state = VerificationState::Verified;
                done.holder = Some(credential.subject_id.clone());
                done.credential_id = credential.id.clone();
                done.issuer = Some(credential.issuer.clone());
                done.disclosed = credential.claims.clone();
            }
            Err(reasons) => {
                done.state = VerificationState::Failed;
                done.reasons = reasons;
                done.holder = vp.get("holder").and_then(Value::as_str).map(str::to_string);
            }
        }
        let mut change = Change::default();
        change.expect.push(Expect::Equals {
            collection: VERIFICATIONS,
            key: record.key.clone(),
            value: before,
        });
        change
            .writes
            .push(Write::put(VERIFICATIONS, &record.key, &done)?);
        change.mark_seen(message)?;
        let verified = done.state == VerificationState::Verified;
        change.send(
            &org.didcomm_did,
            sender,
            present_proof::ack_message(&thid, verified, &done.reasons),
        )?;
        change.event(
            org,
            "verification.completed",
            json!({ "verificationId": done.id, "state": done.state, "reasons": done.reasons, "disclosed": done.disclosed }),
        );
        let _ = self
            .invitations()?
            .use_once(&record.invitation_id, lanyard_protocol::didcomm::now())
            .await;
        self.commit(change).await?;
        self.verification_waker.notify_waiters();
        tracing::info!(org = %org.record.id, verification = %done.id, state = ?done.state, "verification completed");
        Ok(())
    }

    /// Every check of a presentation; the credential that satisfied the request, or why not.
    /// What needs nothing fetched comes first, and the first failure stops the checks: the
    /// template still exists; a presented credential is of the template and by its issuer
    /// (`org`'s did:web); then the proofs, resolving no DID but that issuer's (the holder's is
    /// a did:peer or did:key, known without the network); then the required fields; last the
    /// status list, fetched only from the issuer's own origin. Reasons name no network
    /// detail: a fetch that failed is "... unavailable", its cause in the operator's log.
    async fn check_presentation(
        &self,
        org: &Org,
        record: &Verification,
        vp: &Value,
        now: u64,
    ) -> Result<VerifiedCredential, Vec<String>> {
        let issuer = org.issuer_did.as_str();
        if !matches!(self.template_any(&record.template_id).await, Ok(Some(_))) {
            return Err(vec![format!(
                "the template {} was deleted, so its credentials are revoked",
                record.template_id
            )]);
        }
        precheck(vp, &record.template_id, issuer).map_err(|reason| vec![reason.to_string()])?;
        let resolver = IssuerOnly {
            issuer,
            inner: &self.resolver,
        };
        let presented = verify_presentation(vp, &resolver, &record.challenge, &record.domain, now)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let mut reasons = Vec::new();
        for credential in presented.credentials {
            if credential.template_id.as_deref() != Some(record.template_id.as_str()) {
                continue;
            }
            if credential.issuer != issuer {
                reasons.push(not_the_issuer(&credential.issuer, issuer).to_string());
                continue;
            }
            let missing: Vec<String> = record
                .required_fields
                .iter()
                .filter(|field| credential.claims.get(*field).is_none_or(|v| v.is_null()))
                .map(|field| format!("the required field {field} is missing"))
                .collect();
            if !missing.is_empty() {
                reasons.extend(missing);
                continue;
            }
            match &credential.status {
                Some(entry) => match self.revoked(entry, issuer, &resolver, now).await {
                    Ok(false) => return Ok(credential),
                    Ok(true) => reasons.push("the credential has been revoked".into()),
                    Err(why) => reasons.push(why.to_string()),
                },
                None => reasons.push("the credential has no status entry".into()),
            }
        }
        if reasons.is_empty() {
            reasons.push(Unverified::NotOfTemplate(record.template_id.clone()).to_string());
        }
        Err(reasons)
    }

    /// Fetches and verifies a status list and reads the entry.
    async fn revoked(
        &self,
        entry: &lanyard_protocol::credentials::vc::StatusEntry,
        issuer: &str,
        resolver: &IssuerOnly<'_>,
        now: u64,
    ) -> Result<bool, Unverified> {
        if !on_issuer_origin(&entry.list, issuer) {
            return Err(Unverified::StatusElsewhere);
        }
        let response = self
            .http
            .send(
                Request::get(&entry.list)
                    .header("accept", "application/vc+ld+json, application/json")
                    .max_bytes(self.status_list_max_bytes),
            )
            .await
            .map_err(|error| {
                tracing::warn!(list = %entry.list, %error, "status list not fetched");
                Unverified::StatusUnavailable
            })?;
        if !response.is_success() {
            tracing::warn!(list = %entry.list, status = response.status, "status list not fetched");
            return Err(Unverified::StatusUnavailable);
        }
        let list: Value = serde_json::from_slice(&response.body).map_err(|error| {
            tracing::warn!(list = %entry.list, %error, "status list is not JSON");
            Unverified::StatusUnavailable
        })?;
        // Checked at the time it arrived: a list signed after this verification began (its
        // first fetch since a change) is valid from a later second than `now`.
        let arrived = (super::time::now_ms() / 1000).max(now);
        let read = verify_credential(&list, resolver, arrived)
            .await
            .map_err(|error| {
                tracing::warn!(list = %entry.list, %error, "status list does not verify");
                Unverified::StatusBadProof
            })?;
        if read.issuer != issuer {
            return Err(Unverified::StatusIssuer {
                found: read.issuer,
                issuer: issuer.to_string(),
            });
        }
        is_set(entry, &list).map_err(Unverified::StatusEntry)
    }
}

/// Why a presentation's credential does not verify, beyond what the credential checks in
/// `lanyard_protocol::credentials` say: stored in the verification's reasons, in these words.
#[derive(Debug, thiserror::Error)]
enum Unverified {
    /// The presentation lists no credential.
    #[error("the presentation holds no credential")]
    NoCredential,
    /// None of the credentials is of the template.
    #[error("no credential of template {0} was presented")]
    NotOfTemplate(String),
    /// A credential of the template, issued by someone else.
    #[error("the credential was issued by {found}, not the template's issuer {issuer}")]
    NotTheIssuer {
        /// Who issued it.
        found: String,
        /// The template's issuer.
        issuer: String,
    },
    /// The status list is on another origin than the issuer's did:web document.
    #[error("the credential's status list is not at its issuer's own address")]
    StatusElsewhere,
    /// The status list could not be fetched or read (the details are logged, not shown).
    #[error("the status list is unavailable")]
    StatusUnavailable,
    /// The status list's proof does not verify.
    #[error("the status list does not verify")]
    StatusBadProof,
    /// The status list was issued by someone else.
    #[error("the status list was issued by {found}, not {issuer}")]
    StatusIssuer {
        /// Who issued the list.
        found: String,
        /// The credential's issuer.
        issuer: String,
    },
    /// The credential's status entry does not fit the list.
    #[error("the credential's status entry: {0}")]
    StatusEntry(lanyard_protocol::credentials::CredentialError),
}

fn not_the_issuer(found: &str, issuer: &str) -> Unverified {
    Unverified::NotTheIssuer {
        found: found.to_string(),
        issuer: issuer.to_string(),
    }
}

/// What a presentation's credentials say, read without their proofs: one of them must be of
/// the template and by its issuer before anything is fetched.
fn precheck(vp: &Value, template_id: &str, issuer: &str) -> Result<(), Unverified> {
    let listed: Vec<&Value> = match vp.get("verifiableCredential") {
        Some(Value::Array(items)) => items.iter().take(16).collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => return Err(Unverified::NoCredential),
    };
    let of_template: Vec<_> = listed
        .into_iter()
        .filter_map(|vc| read_credential(vc).ok())
        .filter(|vc| vc.template_id.as_deref() == Some(template_id))
        .collect();
    match of_template.iter().find(|vc| vc.issuer == issuer) {
        Some(_) => Ok(()),
        None => Err(match of_template.first() {
            Some(vc) => not_the_issuer(&vc.issuer, issuer),
            None => Unverified::NotOfTemplate(template_id.to_string()),
        }),
    }
}

/// Whether `url` is on the origin (scheme, host, port) that serves `issuer`'s did:web
/// document.
fn on_issuer_origin(url: &str, issuer: &str) -> bool {
    let origin = |text: &str| reqwest::Url::parse(text).ok().map(|u| u.origin());
    match (
        origin(url),
        did_web_document_url(issuer)
            .ok()
            .as_deref()
            .and_then(origin),
    ) {
        (Some(list), Some(own)) => list.is_tuple() && list == own,
        _ => false,
    }
}

/// Resolves the one did:web the checks expect (the template's issuer) through the agent's
/// resolver, and otherwise only what needs no network (did:peer, did:key): a presenter
/// cannot make the agent fetch a DID of its choosing. A failed fetch is reported without
/// its network detail.
struct IssuerOnly<'a> {
    issuer: &'a str,
    inner: &'a HttpResolver,
}

impl DidResolver for IssuerOnly<'_> {
    async fn resolve(&self, did: &str) -> Result<std::sync::Arc<DidDocument>, DidError> {
        if let Ok(doc) = self.inner.resolve_known(did) {
            if did != self.issuer || !did.starts_with("did:web:") {
                return Ok(doc);
            }
        }
        if did != self.issuer {
            return Err(DidError::NotFound(
                did.to_string(),
                "only the template's issuer is resolved".into(),
            ));
        }
        self.inner.resolve(did).await.map_err(|error| {
            tracing::warn!(%did, %error, "issuer DID not resolved");
            DidError::NotFound(did.to_string(), "its DID document is unavailable".into())
        })
    }

    fn resolve_known(&self, did: &str) -> Result<std::sync::Arc<DidDocument>, DidError> {
        self.inner.resolve_known(did)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_are_read_only_from_the_issuers_own_origin() {
        let issuer = "did:web:issuer.example:orgs:a1";
        assert!(on_issuer_origin(
            "https://issuer.example/orgs/a1/status/1",
            issuer
        ));
        for elsewhere in [
            "https://evil.example/orgs/a1/status/1",
            "http://issuer.example/orgs/a1/status/1",
            "https://issuer.example:8443/orgs/a1/status/1",
            "https://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            assert!(!on_issuer_origin(elsewhere, issuer), "{elsewhere}");
        }
        assert!(on_issuer_origin(
            "http://127.0.0.1:8080/orgs/a1/status/1",
            "did:web:127.0.0.1%3A8080:orgs:a1"
        ));
    }

    async fn pending_verification(issuer: &Issuer<impl IssuerStorage>) -> (Org, Verification) {
        let (org, template) = crate::testing::org_with_template(issuer).await;
        let (verification, _) = issuer
            .create_verification(&org, &json!({ "templateId": template.template_id }))
            .await
            .unwrap();
        (org, verification)
    }

    #[tokio::test]
    async fn a_wait_sees_the_outcome_another_agent_recorded_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), Default::default());
        let (org, pending) = pending_verification(&agents.a).await;

        let waiter = {
            let (a, org, id) = (agents.a.clone(), org.clone(), pending.id.clone());
            tokio::spawn(async move {
                a.wait_for_verification(&org, &id, MAX_VERIFICATION_WAIT)
                    .await
                    .unwrap()
            })
        };
        // The other agent records the outcome: nothing in this agent's process tells the
        // waiter, which reads it from the store.
        let mut done = pending.clone();
        done.state = VerificationState::Verified;
        done.disclosed = json!({ "skill": "rust" }).as_object().unwrap().clone();
        agents
            .storage
            .apply(
                vec![],
                vec![Write::put(VERIFICATIONS, &pending.key, &done).unwrap()],
            )
            .await
            .unwrap();
        let seen = waiter.await.unwrap();
        assert_eq!(seen.state, VerificationState::Verified);
        assert_eq!(seen.disclosed["skill"], "rust");
    }

    #[tokio::test]
    async fn a_wait_ends_pending_after_its_time_and_at_once_when_told_not_to_wait() {
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), Default::default());
        let (org, pending) = pending_verification(&agents.a).await;
        for wait in [
            std::time::Duration::ZERO,
            std::time::Duration::from_millis(20),
        ] {
            let seen = agents
                .a
                .wait_for_verification(&org, &pending.id, wait)
                .await
                .unwrap();
            assert_eq!(seen.state, VerificationState::Pending, "{wait:?}");
        }
        let error = agents
            .a
            .wait_for_verification(&org, "0123456789abcdef01234567", MAX_VERIFICATION_WAIT)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no verification has the id \"0123456789abcdef01234567\""
        );
    }
}
