//! Verifications (DESIGN §3 "Present"): an organisation asks for a credential of one of its
//! templates with some fields; the request travels as an OOB invitation carrying a Present
//! Proof 3.0 `request-presentation` with a fresh challenge and the agent's domain (URL, QR,
//! deep link). The wallet's `presentation` is checked — the holder's proof with that challenge
//! and domain, each credential's proof against its issuer's did:web, its validity period, its
//! status list entry, its template and the required fields — and recorded `verified` or
//! `failed` with the reasons and the disclosed values. A request is answered once.

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use wallet_core::credentials::status_list::is_set;
use wallet_core::credentials::vc::{verify_credential, verify_presentation, VerifiedCredential};
use wallet_core::didcomm::Message;
use wallet_core::protocols::present_proof::{self, PresentationRequest};

use super::exchange::{Answer, Change};
use super::store::{Expect, IssuerStorage, IssuerStorageExt, Write};
use super::templates::json_type;
use super::time::{iso_millis, now_ms};
use super::{new_object_id, ApiError, Issuer, Org};
use crate::invitations::NewInvitation;

const VERIFICATIONS: &str = "verifications";
/// Request message id → verification key.
const VERIFICATION_REQUESTS: &str = "verification_requests";

/// Where a verification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationState {
    Pending,
    Verified,
    Failed,
}

/// A verification request and, once answered, its outcome. `Debug` redacts the disclosed
/// values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub id: String,
    pub org_id: String,
    pub key: String,
    pub template_id: String,
    pub required_fields: Vec<String>,
    pub purpose: String,
    pub challenge: String,
    pub domain: String,
    /// The request message's id (the presentation's `thid`).
    pub request_id: String,
    pub invitation_code: String,
    pub invitation_id: String,
    pub state: VerificationState,
    pub reasons: Vec<String>,
    /// The credential subject's values the presentation disclosed.
    pub disclosed: Map<String, Value>,
    pub holder: Option<String>,
    pub credential_id: Option<String>,
    pub issuer: Option<String>,
    pub created_ms: u64,
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

wallet_core::redacted_debug!(Verification {
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

impl Verification {
    pub fn to_api(&self, links: Option<Value>) -> Value {
        let mut value = json!({
            "id": self.id,
            "state": self.state,
            "templateId": self.template_id,
            "requiredFields": self.required_fields,
            "purpose": self.purpose,
            "challenge": self.challenge,
            "domain": self.domain,
            "reasons": self.reasons,
            "disclosed": self.disclosed,
            "holderDid": self.holder,
            "credentialId": self.credential_id,
            "issuerDid": self.issuer,
            "dateCreated": iso_millis(self.created_ms),
            "dateCompleted": self.completed_ms.map(iso_millis),
        });
        if let Some(links) = links {
            value["invitation"] = links;
        }
        value
    }
}

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
    ) -> Result<(Verification, Value), ApiError> {
        let Value::Object(body) = body else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        if let Some(unknown) = body
            .keys()
            .find(|k| !["templateId", "requiredFields", "purpose"].contains(&k.as_str()))
        {
            return Err(ApiError::field(
                unknown,
                "is not a verification field (templateId, requiredFields, purpose)",
            ));
        }
        let template_id = match body.get("templateId") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim(),
            None | Some(Value::Null) => return Err(ApiError::field("templateId", "is required")),
            Some(_) => {
                return Err(ApiError::field(
                    "templateId",
                    "must be a template id string",
                ))
            }
        };
        let template = self.template(org, template_id).await.map_err(|_| {
            ApiError::not_found(&format!(
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
                        ApiError::field(&at, &format!("must be a string, not {}", json_type(item)))
                    })?;
                    if !fields.iter().any(|(field, _, _)| field == name) {
                        return Err(ApiError::field(
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
                return Err(ApiError::field(
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
                return Err(ApiError::field(
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
            challenge: wallet_core::encoding::b64u_encode(nonce),
            domain: domain_of(&self.public_url),
        };
        let message = present_proof::request_message(&request).from(org.didcomm_did.clone());
        let invitation = NewInvitation {
            from: org.didcomm_did.clone(),
            goal_code: Some("request-proof".into()),
            goal: Some(purpose.clone()),
            label: Some(org.record.name.clone()),
            attachments: vec![
                serde_json::to_value(&message).map_err(|e| ApiError::internal(&e.to_string()))?
            ],
            expires_time: None,
            single_use: true,
        }
        .build()
        .map_err(|e| ApiError::internal(&e.to_string()))?;
        self.hub()?.put_invitation(&invitation).await?;
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
    pub async fn verification(&self, org: &Org, id: &str) -> Result<Verification, ApiError> {
        let all: Vec<Verification> = self
            .storage
            .scan_json(VERIFICATIONS, &format!("{}/", org.record.id), 0, usize::MAX)
            .await?;
        all.into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| ApiError::not_found(&format!("no verification has the id {id:?}")))
    }

    /// One page of `org`'s verifications, oldest first, in `state` if given, and how many
    /// there are.
    pub async fn verifications(
        &self,
        org: &Org,
        state: Option<VerificationState>,
        page: usize,
        page_size: usize,
    ) -> Result<(Vec<Verification>, usize), ApiError> {
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
            None => self.check_presentation(&record, &vp, now / 1000).await,
        };
        let before = serde_json::to_vec(&record).map_err(|e| ApiError::internal(&e.to_string()))?;
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
        let _ = self.hub()?.use_invitation(&record.invitation_id).await;
        self.commit(change).await?;
        tracing::info!(org = %org.record.id, verification = %done.id, state = ?done.state, "verification completed");
        Ok(())
    }

    /// Every check of a presentation; the credential that satisfied the request, or why not.
    async fn check_presentation(
        &self,
        record: &Verification,
        vp: &Value,
        now: u64,
    ) -> Result<VerifiedCredential, Vec<String>> {
        let presented =
            verify_presentation(vp, &self.resolver, &record.challenge, &record.domain, now)
                .await
                .map_err(|e| vec![e.to_string()])?;
        let template_issuer = match self.template_any(&record.template_id).await {
            Ok(Some(template)) => match self.org(&template.org_id).await {
                Ok(Some(org)) => Some(org.issuer_did),
                _ => None,
            },
            _ => None,
        };
        let mut reasons = Vec::new();
        for credential in presented.credentials {
            if credential.template_id.as_deref() != Some(record.template_id.as_str()) {
                continue;
            }
            let mut problems = Vec::new();
            match &template_issuer {
                Some(issuer) if *issuer == credential.issuer => {}
                Some(issuer) => problems.push(format!(
                    "the credential was issued by {}, not the template's issuer {issuer}",
                    credential.issuer
                )),
                None => problems.push(format!(
                    "the template {} no longer exists, so its credentials are void",
                    record.template_id
                )),
            }
            match &credential.status {
                Some(entry) => match self.revoked(entry, &credential.issuer, now).await {
                    Ok(false) => {}
                    Ok(true) => problems.push("the credential has been revoked".into()),
                    Err(why) => problems.push(why),
                },
                None => problems.push("the credential has no status entry".into()),
            }
            for field in &record.required_fields {
                if credential.claims.get(field).is_none_or(|v| v.is_null()) {
                    problems.push(format!("the required field {field} is missing"));
                }
            }
            if problems.is_empty() {
                return Ok(credential);
            }
            reasons.extend(problems);
        }
        if reasons.is_empty() {
            reasons.push(format!(
                "no credential of template {} was presented",
                record.template_id
            ));
        }
        Err(reasons)
    }

    /// Fetches and verifies a status list and reads the entry.
    async fn revoked(
        &self,
        entry: &wallet_core::credentials::vc::StatusEntry,
        issuer: &str,
        now: u64,
    ) -> Result<bool, String> {
        let why = |e: String| format!("the status list {} cannot be checked: {e}", entry.list);
        let response = self
            .http
            .get(&entry.list)
            .send()
            .await
            .map_err(|e| why(e.to_string()))?;
        if !response.status().is_success() {
            return Err(why(format!("it answered {}", response.status())));
        }
        let bytes = response.bytes().await.map_err(|e| why(e.to_string()))?;
        if bytes.len() > 1 << 20 {
            return Err(why("it is larger than 1 MiB".into()));
        }
        let list: Value = serde_json::from_slice(&bytes).map_err(|e| why(e.to_string()))?;
        let read = verify_credential(&list, &self.resolver, now)
            .await
            .map_err(|e| why(e.to_string()))?;
        if read.issuer != issuer {
            return Err(why(format!(
                "it was issued by {}, not {issuer}",
                read.issuer
            )));
        }
        is_set(entry, &list).map_err(|e| why(e.to_string()))
    }
}
