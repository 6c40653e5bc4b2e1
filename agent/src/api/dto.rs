//! The API's response shapes: how the issuer's records are written in the API's JSON (the
//! seed's field names, ISO timestamps), apart from the records themselves.

use serde_json::{json, Map, Value};

use crate::issuer::store::IssuerStorage;
use crate::issuer::{
    camel, iso_millis, Customer, Event, IssuedCredential, Issuer, Org, Template, Verification,
};

impl IssuedCredential {
    /// The exchange as the API shows it.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "templateId": self.template_id,
            "customerId": self.customer_id,
            "holderDid": self.holder_did,
            "state": self.state,
            "values": self.values,
            "statusListIndex": self.status_index,
            "credential": self.credential,
            "problem": self.problem,
            "dateCreated": iso_millis(self.created_ms),
            "dateUpdated": iso_millis(self.updated_ms),
        })
    }
}

impl Event {
    /// The event as the API shows it.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.type_,
            "data": self.data,
            "dateCreated": iso_millis(self.created_ms),
            "delivered": self.delivered,
            "nextAttempt": self.next_attempt_ms.map(iso_millis),
            "attempts": self.attempts.iter().map(|a| json!({
                "at": iso_millis(a.at_ms),
                "status": a.status,
                "error": a.error,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Customer {
    /// The customer as the API shows it.
    pub fn to_api(&self, invite: &Value) -> Value {
        json!({
            "id": self.id,
            "name": self.details.name,
            "medium": self.details.medium,
            "email": self.details.email,
            "phoneNumber": self.details.phone_number,
            "organizationLabel": self.details.organization_label,
            "emailTemplateId": self.details.email_template_id,
            "status": self.status.as_str(),
            "invitation": invite,
            "autoIssue": self.details.auto_issue.as_ref().map(|a| json!({
                "templateId": a.template_id,
                "values": a.values,
            })),
            "connectionDid": self.connection_did,
            "deliveries": self.deliveries.iter().map(|d| json!({
                "at": iso_millis(d.at_ms),
                "medium": d.medium,
                "ok": d.ok,
                "detail": d.detail,
            })).collect::<Vec<_>>(),
            "dateCreated": iso_millis(self.created_ms),
            "dateUpdated": iso_millis(self.updated_ms),
        })
    }
}

impl Verification {
    /// The verification as the API shows it, with its invitation links when given.
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

/// A page of a listing, in the seed's envelope.
pub fn page_json(items: Vec<Value>, page: usize, page_size: usize, total: usize) -> Value {
    json!({
        "data": items,
        "page": page,
        "pageSize": page_size,
        "totalItem": total,
        "totalPage": total.div_ceil(page_size),
    })
}

impl Template {
    /// The template as the API answers it (the seed's shape). `schema_base` is the agent's
    /// public URL; `created_by` the organisation's issuer DID.
    pub fn to_api(&self, schema_base: &str, created_by: &str, ecosystem: &str) -> Value {
        let created = iso_millis(self.created_ms);
        let updated = iso_millis(self.updated_ms);
        let suffix = format!("{}-{}", self.org_id, self.created_ms);
        let mut fields = Map::new();
        let mut ordering = Map::new();
        for (order, (name, description, optional)) in self.fields().into_iter().enumerate() {
            fields.insert(
                name.clone(),
                json!({
                    "title": name,
                    "description": description,
                    "optional": optional,
                    "type": 0,
                }),
            );
            ordering.insert(name, json!({ "order": order, "section": "Data" }));
        }
        let custom_attributes: Vec<Value> = self
            .spec
            .custom_fields
            .iter()
            .zip(&self.spec.descriptions)
            .map(|(key, description)| json!({ "key": key, "description": description }))
            .collect();
        json!({
            "plaidConfig": { "template": "", "enablePII": false },
            "verificationSettings": { "method": null, "price": 0, "age": 0 },
            "numberOfCredentials": self.spec.number_of_credentials,
            "isDefault": false,
            "isPasses": false,
            "dateIssued": created,
            "status": "active",
            "customFields": self.spec.custom_fields,
            "verifierSources": [],
            "requireVerifierSource": false,
            "passkit": { "isEnabled": false, "productionId": "", "ticketTypeId": "" },
            "orcaScan": { "isEnabled": false, "callbackUrl": "" },
            "isPlatform": false,
            "totalOffered": self.total_offered,
            "totalIssued": self.total_issued,
            "totalListing": 0,
            "includeGovernance": false,
            "collaborator": [],
            "_id": self.object_id,
            "templateId": self.template_id,
            "name": self.spec.name,
            "credentialIssuer": self.spec.credential_issuer,
            "credentialType": self.spec.credential_type,
            "logoId": logo_id(&self.spec.logo_url),
            "logoURL": self.spec.logo_url,
            "credentialExpiration": self.spec.credential_expiration,
            "detail": {
                "id": self.template_id,
                "name": format!("{}{}", camel(&self.spec.name), suffix.replace('-', "")),
                "version": 1,
                "fields": fields,
                "allowAdditionalFields": false,
                "schemaUri": format!("{schema_base}/schemas/{}", self.template_id),
                "contextUri": "",
                "ecosystemId": format!("urn:lanyard:ecosystems:{ecosystem}"),
                "type": "VerifiableCredential",
                "createdBy": created_by,
                "dateCreated": created,
                "title": format!("{} {} {}", self.spec.name, self.org_id, self.created_ms),
                "description": "",
                "fieldOrdering": ordering,
            },
            "partner": self.org_id,
            "customAttributes": custom_attributes,
            "dateCreated": created,
            "dateUpdated": updated,
            "welcomeText": "",
            "enableIdentityData": true,
            "isAvailable": true,
            "__v": 0,
        })
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// The API's view of a template.
    pub fn template_json(&self, org: &Org, template: &Template) -> Value {
        template.to_api(self.public_url(), &org.issuer_did, "lanyard")
    }
}

/// A stable id for a logo URL, in the seed's `logos/<hex>` style.
fn logo_id(url: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("logos/{hex}")
}
