//! Onboarding a customer (the console document's "Onboard Customer"): validate, make an OOB
//! invitation from the organisation's DIDComm DID hosted at a short URL, store the customer,
//! send the invitation by email or SMS when a transport is configured, and report the link
//! and QR code either way. The wallet's first message answering that invitation connects it
//! (`connect`), and starts the auto-issue offer when the customer has one.

use serde_json::{json, Value};

use super::customers::{Customer, DeliveryAttempt, Medium, NewCustomer, Status};
use super::email::{render, EmailSource, EmailTemplateStorage, InviteValues};
use super::store::{Expect, IssuerStorage, IssuerStorageExt, Write};
use super::time::now_ms;
use super::{
    new_object_id, Issuer, IssuerError, Org, CUSTOMERS, CUSTOMER_IDS, CUSTOMER_INVITATIONS,
};
use lanyard_protocol::didcomm::Message;

use super::inbound::{ping_reply, Answer};
use super::records::{connection_key, Connection, CONNECTIONS};
use crate::invitations::{qr_png, InvitationRecord, NewInvitation};
use crate::mediator::Refusal;

/// A delivery attempt that failed before the transport was tried, saying why.
fn failed(customer: &Customer, why: &str) -> DeliveryAttempt {
    DeliveryAttempt {
        at_ms: now_ms(),
        medium: customer.details.medium,
        ok: false,
        detail: why.to_string(),
    }
}

/// The goal code of customer invitations: connect, then receive a credential.
pub const ONBOARDING_GOAL_CODE: &str = "issue-vc";

impl<S: IssuerStorage> Issuer<S> {
    /// Onboards one customer from a request body; returns the stored customer and its
    /// invitation's links.
    pub async fn onboard(&self, org: &Org, body: &Value) -> Result<(Customer, Value), IssuerError> {
        let template = match NewCustomer::template_id(body)? {
            Some(id) => {
                let template = self.template(org, &id).await.map_err(|_| {
                    IssuerError::not_found(&format!(
                        "autoIssue.templateId: no template has the id {id:?}"
                    ))
                })?;
                if !template.has_room() {
                    return Err(IssuerError::conflict(&format!(
                        "autoIssue.templateId: template {id} has issued its numberOfCredentials ({})",
                        template.spec.number_of_credentials.unwrap_or_default()
                    )));
                }
                Some(template)
            }
            None => None,
        };
        let new = NewCustomer::parse(body, template.as_ref())?;
        if let Some(id) = &new.email_template_id {
            // Checked before anything is stored: an unknown template is the caller's mistake.
            self.email_template(org, id)
                .await
                .map_err(|error| match error {
                    IssuerError::NotFound(_) => IssuerError::field(
                        "emailTemplateId",
                        &format!("names no email template of {} ({id:?})", org.record.name),
                    ),
                    other => other,
                })?;
        }
        let invitations = self.invitations()?;
        if self.has_transport(new.medium) {
            // Before anything is stored: over the limit, the customer is not created.
            self.take_invitation_token(org)?;
        }
        let record = NewInvitation {
            from: org.didcomm_did.clone(),
            goal_code: Some(ONBOARDING_GOAL_CODE.into()),
            goal: Some(format!(
                "Connect with {} to receive your credential",
                org.record.name
            )),
            label: Some(org.record.name.clone()),
            attachments: Vec::new(),
            expires_time: None,
            single_use: true,
        }
        .build()
        .map_err(|e| IssuerError::internal(&e.to_string()))?;
        invitations.put(&record).await?;

        let now = now_ms();
        let id = new_object_id();
        let key = format!("{}/{now:016x}{}", org.record.id, &id[..8]);
        let mut customer = Customer {
            id: id.clone(),
            org_id: org.record.id.clone(),
            key: key.clone(),
            details: new,
            status: Status::Initiated,
            invitation_code: record.code.clone(),
            invitation_id: record.message.id.clone(),
            connection_did: None,
            deliveries: Vec::new(),
            created_ms: now,
            updated_ms: now,
        };
        self.storage
            .apply(
                vec![],
                vec![
                    Write::put(CUSTOMERS, &key, &customer)?,
                    Write::put(CUSTOMER_IDS, &id, &key)?,
                    Write::put(CUSTOMER_INVITATIONS, &customer.invitation_id, &key)?,
                ],
            )
            .await?;
        tracing::info!(org = %org.record.id, customer = %id, medium = ?customer.details.medium, "customer onboarded");
        if let Some(attempt) = self.send_invitation(org, &customer, &record).await {
            customer = self.record_delivery(&customer, attempt).await?;
        }
        let links = self.invitation_links(&record);
        Ok((customer, links))
    }

    /// Whether invitations by `medium` are sent (a transport for it is configured).
    fn has_transport(&self, medium: Medium) -> bool {
        match medium {
            Medium::Email => self.mailer.is_some(),
            Medium::Sms => self.sms.is_some(),
        }
    }

    /// Counts one invitation email or SMS against `org`'s rate; over it, a 429 that names the
    /// limit and when to try again.
    fn take_invitation_token(&self, org: &Org) -> Result<(), IssuerError> {
        self.invitations_sent.take(&org.record.id).map_err(|wait| {
            tracing::warn!(org = %org.record.id, "invitation rate limit reached");
            IssuerError::too_many_requests(&format!(
                "{} has sent as many invitation emails and SMS as it may ({}, \
                 LANYARD_INVITATIONS_PER_HOUR / LANYARD_INVITATION_BURST); nothing was stored; \
                 try again in {} s",
                org.record.name,
                self.limits.invitations_sent.describe(),
                wait.as_secs().max(1)
            ))
        })
    }

    /// Sends the invitation by the customer's medium, when a transport for it is configured.
    async fn send_invitation(
        &self,
        org: &Org,
        customer: &Customer,
        record: &InvitationRecord,
    ) -> Option<DeliveryAttempt> {
        let url = record.short_url(&self.public_url);
        let qr = match qr_png(&url, 8) {
            Ok(png) => png,
            Err(error) => return Some(failed(customer, &error.to_string())),
        };
        let invite = InviteValues {
            customer_name: &customer.details.name,
            organization_name: &org.record.name,
            url: &url,
        };
        let outcome = match customer.details.medium {
            Medium::Email => {
                let mailer = self.mailer.as_ref()?;
                // A stored template deleted since onboarding leaves the default email.
                let stored = match &customer.details.email_template_id {
                    Some(id) => match self.storage.email_template(&org.record.id, id).await {
                        Ok(found) => found,
                        Err(error) => {
                            tracing::error!(%error, "reading the customer's email template");
                            return Some(failed(
                                customer,
                                "storage failed reading the email template",
                            ));
                        }
                    },
                    None => None,
                };
                let source = match (&stored, &customer.details.email_template) {
                    (Some(stored), _) => EmailSource::Stored(&stored.spec),
                    (None, Some(inline)) => EmailSource::Inline(inline),
                    (None, None) => EmailSource::Default,
                };
                match render(source, &invite, qr) {
                    Ok(email) => {
                        mailer
                            .send(
                                customer.details.email.as_deref().unwrap_or_default(),
                                &email,
                            )
                            .await
                    }
                    Err(error) => return Some(failed(customer, &error.to_string())),
                }
            }
            Medium::Sms => {
                let gateway = self.sms.as_ref()?;
                let label = customer
                    .details
                    .organization_label
                    .as_deref()
                    .unwrap_or(&org.record.name);
                gateway
                    .send(
                        customer.details.phone_number.as_deref().unwrap_or_default(),
                        label,
                        &invite,
                    )
                    .await
            }
        };
        if let Err(error) = &outcome {
            tracing::warn!(customer = %customer.id, %error, "invitation not delivered");
        }
        Some(DeliveryAttempt {
            at_ms: now_ms(),
            medium: customer.details.medium,
            ok: outcome.is_ok(),
            detail: outcome.unwrap_or_else(|e| e.to_string()),
        })
    }

    /// Records a delivery attempt; a successful one moves an `Initiated` customer to `Invited`.
    async fn record_delivery(
        &self,
        customer: &Customer,
        attempt: DeliveryAttempt,
    ) -> Result<Customer, IssuerError> {
        let before =
            serde_json::to_vec(customer).map_err(|e| IssuerError::internal(&e.to_string()))?;
        let mut updated = customer.clone();
        if attempt.ok && updated.status == Status::Initiated {
            updated.status = Status::Invited;
        }
        updated.deliveries.push(attempt);
        updated.updated_ms = now_ms();
        self.storage
            .apply(
                vec![Expect::Equals {
                    collection: CUSTOMERS,
                    key: customer.key.clone(),
                    value: before,
                }],
                vec![Write::put(CUSTOMERS, &customer.key, &updated)?],
            )
            .await?;
        Ok(updated)
    }

    /// The ways to reach an invitation: short URL, QR images, deep link, inline OOB URL.
    pub fn invitation_links(&self, record: &InvitationRecord) -> Value {
        let url = record.short_url(&self.public_url);
        json!({
            "code": record.code,
            "id": record.message.id,
            "url": url,
            "qrPng": format!("{url}/qr.png"),
            "qrSvg": format!("{url}/qr.svg"),
            "deepLink": record.deep_link(&self.scheme),
            "oobUrl": record.oob_url(&self.public_url),
        })
    }

    /// The links of a stored customer's invitation (without the OOB message itself).
    pub fn customer_links(&self, customer: &Customer) -> Value {
        let url = format!("{}/i/{}", self.public_url, customer.invitation_code);
        json!({
            "code": customer.invitation_code,
            "id": customer.invitation_id,
            "url": url,
            "qrPng": format!("{url}/qr.png"),
            "qrSvg": format!("{url}/qr.svg"),
        })
    }

    /// A stored customer as the API shows it, with its invitation's links.
    pub fn customer_json(&self, customer: &Customer) -> Value {
        customer.to_api(&self.customer_links(customer))
    }

    /// A customer of `org` by id.
    pub async fn customer(&self, org: &Org, id: &str) -> Result<Customer, IssuerError> {
        let not_found = || IssuerError::not_found(&format!("no customer has the id {id:?}"));
        let key: String = self
            .storage
            .get_json(CUSTOMER_IDS, id)
            .await?
            .ok_or_else(not_found)?;
        let customer: Customer = self
            .storage
            .get_json(CUSTOMERS, &key)
            .await?
            .ok_or_else(not_found)?;
        if customer.org_id != org.record.id {
            return Err(not_found());
        }
        Ok(customer)
    }

    /// One page of `org`'s customers, oldest first, optionally only those in `status`; and
    /// how many match.
    pub async fn customers(
        &self,
        org: &Org,
        status: Option<Status>,
        page: usize,
        page_size: usize,
    ) -> Result<(Vec<Customer>, usize), IssuerError> {
        let prefix = format!("{}/", org.record.id);
        let skip = (page - 1).saturating_mul(page_size);
        let Some(status) = status else {
            // Unfiltered: a count and one page, not every customer in memory.
            let total = self.storage.count(CUSTOMERS, &prefix).await?;
            let items = self
                .storage
                .scan_json(CUSTOMERS, &prefix, skip, page_size)
                .await?;
            return Ok((items, total));
        };
        let all: Vec<Customer> = self
            .storage
            .scan_json(CUSTOMERS, &prefix, 0, usize::MAX)
            .await?;
        let matching: Vec<Customer> = all.into_iter().filter(|c| c.status == status).collect();
        let total = matching.len();
        Ok((
            matching.into_iter().skip(skip).take(page_size).collect(),
            total,
        ))
    }

    /// Sends a customer's invitation again (when the first try failed or went astray).
    pub async fn resend(&self, org: &Org, id: &str) -> Result<Customer, IssuerError> {
        let customer = self.customer(org, id).await?;
        if customer.status == Status::Onboarded {
            return Err(IssuerError::conflict(&format!(
                "customer {id} is onboarded already"
            )));
        }
        let record = self
            .invitations()?
            .by_code(&customer.invitation_code)
            .await?
            .ok_or_else(|| IssuerError::internal("the customer's invitation is gone"))?;
        if self.has_transport(customer.details.medium) {
            self.take_invitation_token(org)?;
        }
        let attempt = self
            .send_invitation(org, &customer, &record)
            .await
            .ok_or_else(|| {
                IssuerError::conflict(&format!(
                    "no {} transport is configured",
                    match customer.details.medium {
                        Medium::Email => "email (LANYARD_SMTP_URL)",
                        Medium::Sms => "SMS (LANYARD_SMS_URL)",
                    }
                ))
            })?;
        self.record_delivery(&customer, attempt).await
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// A wallet's first message: it must answer a customer's invitation (`pthid`).
    pub(super) async fn connect(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
    ) -> Result<(), Answer> {
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
        // Read before the invitation is spent: a malformed ping spends nothing.
        let reply = ping_reply(message)?;
        let spent_now = self
            .invitations()?
            .use_once(pthid, lanyard_protocol::didcomm::now())
            .await
            .map_err(Refusal::Storage)?;
        // Spent before, yet the customer is not onboarded: the change that spent it did not
        // commit (it lost a race with this same message at another agent and is made again,
        // or its agent died). The customer record's guard below lets one wallet through.
        if !spent_now && customer.status == Status::Onboarded {
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
            connection_key(&org.record.id, sender),
            &connection,
        )?);
        let before =
            serde_json::to_vec(&customer).map_err(|e| IssuerError::internal(&e.to_string()))?;
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
        if let Some(reply) = reply {
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
}
