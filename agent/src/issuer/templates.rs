//! Credential templates as the seed's template API has them (`../shared/seeds/`, "Credential
//! Template"): the request fields (`templateName`, `credentialIssuer`, `credentialType`,
//! `logoURL`, `credentialExpiration`, `customFields`, `descriptions`, `numberOfCredentials`),
//! their validation, and the response shape (`templateId` URN, `detail.fields`,
//! `fieldOrdering`, `customAttributes`, counters, dates), and their CRUD. Every credential is
//! issued from one; deleting a template revokes its credentials and tells their holders.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::outbox::Change;
use super::records::{
    credential_key, CredentialState, IssuedCredential, CREDENTIALS, CREDENTIALS_BY_TEMPLATE,
};
use super::status_list::STATUS_REVISIONS;
use super::store::{BatchError, Expect, Write};
use super::store::{IssuerStorage, IssuerStorageExt};
use super::time::now_ms;
use super::time::parse_timestamp;
use super::{new_object_id, Issuer, IssuerError, Org, TEMPLATES, TEMPLATE_IDS};
use lanyard_protocol::protocols::deletion;

/// The fields every template has before its custom ones, with their descriptions and whether
/// a credential may leave them out.
pub const STANDARD_FIELDS: [(&str, &str, bool); 3] = [
    ("credentialIssuer", "Credential Issuer", false),
    ("credentialType", "Credential Type", false),
    ("holderFullName", "Holder Full Name", true),
];

/// Most custom fields one template may have.
pub const MAX_CUSTOM_FIELDS: usize = 50;
/// Longest name, issuer, type or description.
const MAX_TEXT: usize = 200;
/// The largest `numberOfCredentials`.
const MAX_CREDENTIALS: u64 = 1_000_000_000;

/// What a template says about its credentials: the create request, validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    /// `templateName`.
    pub name: String,
    /// `credentialIssuer`: who the credential says issued it.
    pub credential_issuer: String,
    /// `credentialType`.
    pub credential_type: String,
    /// `logoURL` (empty when none).
    pub logo_url: String,
    /// RFC 3339; credentials issued from the template expire then.
    pub credential_expiration: Option<String>,
    /// `customFields`: the names of the fields beyond the standard ones.
    pub custom_fields: Vec<String>,
    /// `descriptions` of the custom fields, in their order.
    pub descriptions: Vec<String>,
    /// `numberOfCredentials`: the most that may be issued, if limited.
    pub number_of_credentials: Option<u64>,
}

/// A stored template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The 24-hex-digit record id (`_id`).
    pub object_id: String,
    /// `urn:template:<ecosystem>:<slug>-<org id>-<millis>`.
    pub template_id: String,
    /// The organisation it belongs to.
    pub org_id: String,
    /// Storage key within the organisation (creation order).
    pub key: String,
    /// What the create request said.
    #[serde(flatten)]
    pub spec: TemplateSpec,
    /// Credentials offered from it.
    pub total_offered: u64,
    /// Credentials issued from it.
    pub total_issued: u64,
    /// Milliseconds since the epoch.
    pub created_ms: u64,
    /// When it last changed (ms since the epoch).
    pub updated_ms: u64,
}

const REQUEST_FIELDS: [&str; 8] = [
    "templateName",
    "credentialIssuer",
    "credentialType",
    "logoURL",
    "credentialExpiration",
    "customFields",
    "descriptions",
    "numberOfCredentials",
];

fn required_text(body: &Map<String, Value>, field: &str) -> Result<String, IssuerError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(IssuerError::field(field, "is required")),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() {
                Err(IssuerError::field(field, "must not be empty"))
            } else if text.chars().count() > MAX_TEXT {
                Err(IssuerError::field(
                    field,
                    &format!("is longer than {MAX_TEXT} characters"),
                ))
            } else if text.chars().any(char::is_control) {
                Err(IssuerError::field(
                    field,
                    "must not contain control characters",
                ))
            } else {
                Ok(text.to_string())
            }
        }
        Some(other) => Err(IssuerError::field(
            field,
            &format!("must be a string, not {}", json_type(other)),
        )),
    }
}

fn string_list(body: &Map<String, Value>, field: &str) -> Result<Vec<String>, IssuerError> {
    let Some(value) = body.get(field) else {
        return Err(IssuerError::field(field, "is required"));
    };
    let Value::Array(items) = value else {
        return Err(IssuerError::field(
            field,
            &format!("must be an array of strings, not {}", json_type(value)),
        ));
    };
    if items.len() > MAX_CUSTOM_FIELDS {
        return Err(IssuerError::field(
            field,
            &format!("has more than {MAX_CUSTOM_FIELDS} entries"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(text) if text.chars().count() <= MAX_TEXT => Ok(text.trim().to_string()),
            Value::String(_) => Err(IssuerError::field(
                &format!("{field}[{index}]"),
                &format!("is longer than {MAX_TEXT} characters"),
            )),
            other => Err(IssuerError::field(
                &format!("{field}[{index}]"),
                &format!("must be a string, not {}", json_type(other)),
            )),
        })
        .collect()
}

/// The JSON type of a value, as an error message names it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `name` can be a credential field: a letter, then letters, digits or `_`.
pub fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl TemplateSpec {
    /// Validates a create request's body; the error names the first field that is wrong.
    pub fn parse(body: &Value, now_ms: u64) -> Result<TemplateSpec, IssuerError> {
        let Value::Object(body) = body else {
            return Err(IssuerError::bad_request(&format!(
                "the body must be a JSON object, not {}",
                json_type(body)
            )));
        };
        if let Some(unknown) = body.keys().find(|k| !REQUEST_FIELDS.contains(&k.as_str())) {
            return Err(IssuerError::field(
                unknown,
                &format!(
                    "is not a template field (expected {})",
                    REQUEST_FIELDS.join(", ")
                ),
            ));
        }
        let name = required_text(body, "templateName")?;
        let credential_issuer = required_text(body, "credentialIssuer")?;
        let credential_type = required_text(body, "credentialType")?;
        let logo_url = required_text(body, "logoURL")?;
        if !(logo_url.starts_with("https://") || logo_url.starts_with("http://"))
            || logo_url.len() > 2048
            || logo_url.contains(char::is_whitespace)
        {
            return Err(IssuerError::field("logoURL", "must be an http(s) URL"));
        }
        // Required like every field the seed marks so; `null` is "never expires".
        let credential_expiration = match body.get("credentialExpiration") {
            None => {
                return Err(IssuerError::field(
                    "credentialExpiration",
                    "is required (a date, or null for credentials that never expire)",
                ))
            }
            Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => {
                return Err(IssuerError::field(
                    "credentialExpiration",
                    "must be a date (YYYY-MM-DD) or an RFC 3339 date-time, or null for credentials that never expire; it is empty",
                ))
            }
            Some(Value::String(text)) => {
                let at = parse_timestamp(text.trim()).ok_or_else(|| {
                    IssuerError::field(
                        "credentialExpiration",
                        &format!("{text:?} is not a date (YYYY-MM-DD) or an RFC 3339 date-time"),
                    )
                })?;
                if at.saturating_mul(1000) <= now_ms {
                    return Err(IssuerError::field(
                        "credentialExpiration",
                        &format!("{text:?} is in the past"),
                    ));
                }
                Some(super::time::rfc3339_secs(at))
            }
            Some(other) => {
                return Err(IssuerError::field(
                    "credentialExpiration",
                    &format!("must be a date string or null, not {}", json_type(other)),
                ))
            }
        };
        let custom_fields = string_list(body, "customFields")?;
        let descriptions = string_list(body, "descriptions")?;
        if descriptions.len() != custom_fields.len() {
            return Err(IssuerError::field(
                "descriptions",
                &format!(
                    "has {} entries but customFields has {}; give one description per custom field",
                    descriptions.len(),
                    custom_fields.len()
                ),
            ));
        }
        for (index, field) in custom_fields.iter().enumerate() {
            let at = format!("customFields[{index}]");
            if !valid_field_name(field) {
                return Err(IssuerError::field(
                    &at,
                    &format!("{field:?} is not a field name (a letter, then letters, digits or _)"),
                ));
            }
            if STANDARD_FIELDS.iter().any(|(name, _, _)| name == field) || field == "id" {
                return Err(IssuerError::field(
                    &at,
                    &format!("{field:?} is a standard field of every template"),
                ));
            }
            if custom_fields[..index].contains(field) {
                return Err(IssuerError::field(
                    &at,
                    &format!("{field:?} is listed twice"),
                ));
            }
        }
        for (index, description) in descriptions.iter().enumerate() {
            if description.chars().any(char::is_control) {
                return Err(IssuerError::field(
                    &format!("descriptions[{index}]"),
                    "must not contain control characters",
                ));
            }
        }
        let number_of_credentials = match body.get("numberOfCredentials") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if (1..=MAX_CREDENTIALS).contains(&n) => Some(n),
                _ => {
                    return Err(IssuerError::field(
                        "numberOfCredentials",
                        &format!("must be a whole number from 1 to {MAX_CREDENTIALS}, or null"),
                    ))
                }
            },
            Some(other) => {
                return Err(IssuerError::field(
                    "numberOfCredentials",
                    &format!("must be a number or null, not {}", json_type(other)),
                ))
            }
        };
        Ok(TemplateSpec {
            name,
            credential_issuer,
            credential_type,
            logo_url,
            credential_expiration,
            custom_fields,
            descriptions,
            number_of_credentials,
        })
    }
}

/// Lower-case words joined by `-`: `Template Demo` → `template-demo`.
pub(crate) fn slug(text: &str) -> String {
    let mut slug = String::new();
    for word in text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
        if slug.len() > 48 {
            break;
        }
    }
    if slug.is_empty() {
        slug.push_str("template");
    }
    slug
}

/// Capitalised words run together: `Template Demo` → `TemplateDemo`.
pub(crate) fn camel(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

impl Template {
    /// Every field a credential from this template has: the standard ones, then the custom.
    pub fn fields(&self) -> Vec<(String, String, bool)> {
        STANDARD_FIELDS
            .iter()
            .map(|(name, description, optional)| {
                (name.to_string(), description.to_string(), *optional)
            })
            .chain(
                self.spec
                    .custom_fields
                    .iter()
                    .zip(&self.spec.descriptions)
                    .map(|(name, description)| (name.clone(), description.clone(), true)),
            )
            .collect()
    }

    /// Whether another credential may be issued under `numberOfCredentials`.
    pub fn has_room(&self) -> bool {
        self.spec
            .number_of_credentials
            .is_none_or(|limit| self.total_issued < limit)
    }

    /// A JSON Schema (2020-12) of the `credentialSubject` of credentials from this template,
    /// published at the template's `schemaUri`.
    pub fn json_schema(&self, schema_base: &str) -> Value {
        let mut properties = Map::new();
        properties.insert(
            "id".into(),
            json!({ "type": "string", "description": "The holder's DID" }),
        );
        let mut required = vec![json!("id")];
        for (name, description, optional) in self.fields() {
            properties.insert(
                name.clone(),
                json!({ "type": "string", "description": description }),
            );
            if !optional {
                required.push(json!(name));
            }
        }
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("{schema_base}/schemas/{}", self.template_id),
            "title": self.spec.name,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }
}

/// Whether `id` has the shape of a template's `_id` (24 hex digits) rather than a URN.
fn is_object_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<S: IssuerStorage> Issuer<S> {
    /// A template of `org` by the id an API path names: its `templateId` URN or its `_id`
    /// (the seed's "Template ID" is either). Another organisation's is not found.
    pub async fn template_by_either_id(
        &self,
        org: &Org,
        id: &str,
    ) -> Result<Template, IssuerError> {
        if !is_object_id(id) {
            return self.template(org, id).await;
        }
        // `_id`s are not indexed: the organisation's own templates are read a page at a time.
        let prefix = format!("{}/", org.record.id);
        let (mut found, _) = self
            .storage()
            .filter_json(TEMPLATES, &prefix, |t: &Template| t.object_id == id, 0, 1)
            .await?;
        found
            .pop()
            .ok_or_else(|| IssuerError::not_found(&format!("no template has the id {id:?}")))
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Creates a template for `org` from a create request's body.
    pub async fn create_template(&self, org: &Org, body: &Value) -> Result<Template, IssuerError> {
        let now = now_ms();
        let spec = TemplateSpec::parse(body, now)?;
        let template_id = format!(
            "urn:template:lanyard:{}-{}-{now}",
            slug(&spec.name),
            org.record.id
        );
        let key = format!("{}/{now:016x}{}", org.record.id, &new_object_id()[..8]);
        let template = Template {
            object_id: new_object_id(),
            template_id: template_id.clone(),
            org_id: org.record.id.clone(),
            key: key.clone(),
            spec,
            total_offered: 0,
            total_issued: 0,
            created_ms: now,
            updated_ms: now,
        };
        self.storage
            .apply(
                vec![Expect::Absent {
                    collection: TEMPLATE_IDS,
                    key: template_id.clone(),
                }],
                vec![
                    Write::put(TEMPLATES, &key, &template)?,
                    Write::put(TEMPLATE_IDS, &template_id, &key)?,
                ],
            )
            .await
            .map_err(|error| match error {
                BatchError::Conflict => IssuerError::conflict(&format!(
                    "a template with id {template_id} exists already"
                )),
                other => other.into(),
            })?;
        tracing::info!(org = %org.record.id, template = %template_id, "template created");
        Ok(template)
    }

    /// A template of `org` by its `templateId`; another organisation's is not found.
    pub async fn template(&self, org: &Org, template_id: &str) -> Result<Template, IssuerError> {
        self.template_any(template_id)
            .await?
            .filter(|t| t.org_id == org.record.id)
            .ok_or_else(|| {
                IssuerError::not_found(&format!("no template has the id {template_id:?}"))
            })
    }

    /// A template by id, whichever organisation has it.
    pub async fn template_any(&self, template_id: &str) -> Result<Option<Template>, IssuerError> {
        let Some(key) = self
            .storage
            .get_json::<String>(TEMPLATE_IDS, template_id)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.storage.get_json(TEMPLATES, &key).await?)
    }

    /// One page of `org`'s templates, oldest first, and how many there are.
    pub async fn templates(
        &self,
        org: &Org,
        page: usize,
        page_size: usize,
    ) -> Result<(Vec<Template>, usize), IssuerError> {
        let prefix = format!("{}/", org.record.id);
        let total = self.storage.count(TEMPLATES, &prefix).await?;
        let skip = (page - 1).saturating_mul(page_size);
        let items = self
            .storage
            .scan_json(TEMPLATES, &prefix, skip, page_size)
            .await?;
        Ok((items, total))
    }

    /// The public JSON Schema of a template's credentials.
    pub async fn template_schema(&self, template_id: &str) -> Result<Value, IssuerError> {
        self.template_any(template_id)
            .await?
            .map(|t| t.json_schema(&self.public_url))
            .ok_or_else(|| {
                IssuerError::not_found(&format!("no template has the id {template_id:?}"))
            })
    }

    /// Every credential exchange of a template.
    pub(crate) async fn credentials_of_template(
        &self,
        template_id: &str,
    ) -> Result<Vec<IssuedCredential>, IssuerError> {
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
    ) -> Result<Template, IssuerError> {
        let template = self.template(org, template_id).await?;
        let credentials = self.credentials_of_template(&template.template_id).await?;
        let mut change = Change::default();
        let before =
            serde_json::to_vec(&template).map_err(|e| IssuerError::internal(&e.to_string()))?;
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
        if credentials
            .iter()
            .any(|c| c.state != CredentialState::Revoked)
        {
            // The status list changes: its next GET signs it again.
            change.writes.push(Write::put(
                STATUS_REVISIONS,
                &org.record.id,
                &super::new_object_id(),
            )?);
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
        self.commit(change).await.map_err(|e| match e {
            IssuerError::Conflict(_) => {
                IssuerError::conflict("the template changed while it was being deleted; try again")
            }
            other => other,
        })?;
        tracing::info!(org = %org.record.id, template = %template_id, holders, "template deleted");
        Ok(template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_slugs_and_camel_case() {
        assert_eq!(slug("Template Demo"), "template-demo");
        assert_eq!(slug("  ¡Hola!  "), "hola");
        assert_eq!(slug("***"), "template");
        assert_eq!(camel("Template demo 2"), "TemplateDemo2");
    }

    #[test]
    fn field_names_are_identifiers() {
        assert!(valid_field_name("verifiedHello1"));
        assert!(valid_field_name("a_b"));
        for bad in ["", "1a", "a-b", "a b", "ä", &"a".repeat(65)] {
            assert!(!valid_field_name(bad), "{bad:?}");
        }
    }
}
