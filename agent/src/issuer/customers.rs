//! Customers as the console document's "Onboard Customer" has them: a name and a medium (email
//! with a valid address, or SMS with a number in international form and the organisation's
//! label), an optional email template, optional auto-issue (a template and its values), and
//! the onboarding status `Initiated` → `Invited` → `Onboarded`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::email::check_placeholders;
use super::templates::{json_type, Template};
use super::IssuerError;

/// How the invitation reaches the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    /// By email, with the QR code inline.
    Email,
    /// By SMS, through the configured gateway.
    Sms,
}

/// Where a customer is in onboarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Created; the invitation was not sent (no transport, or sending failed).
    Initiated,
    /// The email or SMS went out.
    Invited,
    /// The customer's wallet connected.
    Onboarded,
}

impl Status {
    /// The status an API filter names (`Initiated`, `Invited`, `Onboarded`).
    pub fn parse(text: &str) -> Option<Status> {
        match text.to_ascii_lowercase().as_str() {
            "initiated" => Some(Status::Initiated),
            "invited" => Some(Status::Invited),
            "onboarded" => Some(Status::Onboarded),
            _ => None,
        }
    }

    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initiated => "Initiated",
            Status::Invited => "Invited",
            Status::Onboarded => "Onboarded",
        }
    }
}

/// An email's subject and text with `{{customerName}}`, `{{organizationName}}` and
/// `{{inviteUrl}}` placeholders (`email::PLACEHOLDERS`), given with an onboarding request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTemplate {
    /// The subject line (one line; placeholders allowed).
    pub subject: String,
    /// The text (placeholders allowed).
    pub body: String,
}

/// The credential to issue as soon as the customer connects. `Debug` redacts the values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoIssue {
    /// The template offered once the wallet connects.
    pub template_id: String,
    /// Field → value, every one a field of the template.
    pub values: Map<String, Value>,
}

lanyard_protocol::redacted_debug!(AutoIssue {
    shown: [template_id],
    redacted: [values],
});

/// One try at sending the invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// When it was tried (ms since the epoch).
    pub at_ms: u64,
    /// How it was sent.
    pub medium: Medium,
    /// Whether the transport took it.
    pub ok: bool,
    /// What the transport said (the SMTP reply or HTTP status), or why it failed.
    pub detail: String,
}

/// A validated onboarding request: who the customer is and how to reach them. `Debug` redacts
/// the customer's name, email, phone number and email text (a [`Customer`]'s too).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// The customer's name.
    pub name: String,
    /// How the invitation goes.
    pub medium: Medium,
    /// The email address (email medium).
    pub email: Option<String>,
    /// The phone number in E.164 (SMS medium).
    pub phone_number: Option<String>,
    /// Who the SMS says it is from (the organisation's name otherwise).
    pub organization_label: Option<String>,
    /// The invitation email given with the request, when not the default one.
    pub email_template: Option<EmailTemplate>,
    /// The organisation's stored email template chosen for the invitation (`emailTemplateId`),
    /// when not the default one.
    #[serde(default)]
    pub email_template_id: Option<String>,
    /// The credential offered as soon as the wallet connects.
    pub auto_issue: Option<AutoIssue>,
}

lanyard_protocol::redacted_debug!(NewCustomer {
    shown: [medium, organization_label, email_template_id, auto_issue],
    redacted: [name, email, phone_number, email_template],
});

/// A stored customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// 24 hex digits.
    pub id: String,
    /// The organisation the customer belongs to.
    pub org_id: String,
    /// Storage key within the organisation (creation order).
    pub key: String,
    /// What the onboarding request said.
    #[serde(flatten)]
    pub details: NewCustomer,
    /// How far onboarding got.
    pub status: Status,
    /// The OOB invitation's code (`/i/<code>`) and message id (the `pthid` it is answered with).
    pub invitation_code: String,
    /// The id of the customer's OOB invitation (the wallet's `pthid`).
    pub invitation_id: String,
    /// The customer's connection DID, once onboarded.
    pub connection_did: Option<String>,
    /// Each attempt to send the invitation.
    pub deliveries: Vec<DeliveryAttempt>,
    /// When the customer was created (ms since the epoch).
    pub created_ms: u64,
    /// When the record last changed (ms since the epoch).
    pub updated_ms: u64,
}

const FIELDS: [&str; 8] = [
    "name",
    "medium",
    "email",
    "phoneNumber",
    "organizationLabel",
    "emailTemplate",
    "emailTemplateId",
    "autoIssue",
];

/// Whether `address` is a plausible mailbox: one `@`, a local part and a dotted domain of
/// letters, digits and hyphens, no spaces, at most 254 characters (RFC 5321 §4.5.3.1).
pub fn valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    address.len() <= 254 && local_ok && domain_ok
}

/// A phone number in E.164 form (`+` and 8 to 15 digits, the first not 0), from what a person
/// types: spaces, dashes, dots and parentheses are dropped. None when it is not one.
pub(crate) fn normalise_phone(text: &str) -> Option<String> {
    let rest = text.trim().strip_prefix('+')?;
    let digits: String = rest.chars().filter(|c| !" -.()".contains(*c)).collect();
    (digits.len() >= 8
        && digits.len() <= 15
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0'))
    .then(|| format!("+{digits}"))
}

fn text_field(
    body: &Map<String, Value>,
    field: &str,
    required: bool,
    max: usize,
) -> Result<Option<String>, IssuerError> {
    match body.get(field) {
        None | Some(Value::Null) if required => Err(IssuerError::field(field, "is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let text = text.trim();
            if text.is_empty() && required {
                Err(IssuerError::field(field, "must not be empty"))
            } else if text.chars().count() > max {
                Err(IssuerError::field(
                    field,
                    &format!("is longer than {max} characters"),
                ))
            } else if text.chars().any(|c| c.is_control() && c != '\n') {
                Err(IssuerError::field(
                    field,
                    "must not contain control characters",
                ))
            } else {
                Ok(Some(text.to_string()))
            }
        }
        Some(other) => Err(IssuerError::field(
            field,
            &format!("must be a string, not {}", json_type(other)),
        )),
    }
}

/// Checks auto-issue values against `template`: every key a field of it, every value a string
/// of at most 1000 characters. The standard fields the template fixes (issuer, type) may be
/// left out; they are filled from the template.
pub(crate) fn check_values(
    template: &Template,
    values: &Value,
    at: &str,
) -> Result<Map<String, Value>, IssuerError> {
    let Value::Object(values) = values else {
        return Err(IssuerError::field(
            at,
            &format!(
                "must be an object of field values, not {}",
                json_type(values)
            ),
        ));
    };
    let fields = template.fields();
    for (name, value) in values {
        if !fields.iter().any(|(field, _, _)| field == name) {
            let known: Vec<&str> = fields.iter().map(|(f, _, _)| f.as_str()).collect();
            return Err(IssuerError::field(
                &format!("{at}.{name}"),
                &format!(
                    "is not a field of template {} (its fields: {})",
                    template.template_id,
                    known.join(", ")
                ),
            ));
        }
        match value {
            Value::String(text) if text.chars().count() <= 1000 => {}
            Value::String(_) => {
                return Err(IssuerError::field(
                    &format!("{at}.{name}"),
                    "is longer than 1000 characters",
                ))
            }
            other => {
                return Err(IssuerError::field(
                    &format!("{at}.{name}"),
                    &format!("must be a string, not {}", json_type(other)),
                ))
            }
        }
    }
    Ok(values.clone())
}

/// `emailTemplateId`'s value read: absent or null is the default email.
fn email_template_id_of(value: Option<&Value>) -> Result<Option<String>, IssuerError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(Some(id.trim().to_string())),
        Some(Value::String(_)) => Err(IssuerError::field(
            "emailTemplateId",
            "must not be empty (leave it out for the default email)",
        )),
        Some(other) => Err(IssuerError::field(
            "emailTemplateId",
            &format!("must be a string, not {}", json_type(other)),
        )),
    }
}

impl NewCustomer {
    /// Validates an onboarding request. `auto_issue` is checked against the template the
    /// caller looked up (its `templateId` is read first with [`NewCustomer::template_id`]).
    pub fn parse(body: &Value, template: Option<&Template>) -> Result<NewCustomer, IssuerError> {
        let Value::Object(body) = body else {
            return Err(IssuerError::bad_request(&format!(
                "the body must be a JSON object, not {}",
                json_type(body)
            )));
        };
        if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(IssuerError::field(
                unknown,
                &format!("is not a customer field (expected {})", FIELDS.join(", ")),
            ));
        }
        let name = text_field(body, "name", true, 200)?.unwrap_or_default();
        let medium = match body.get("medium") {
            Some(Value::String(m)) if m.eq_ignore_ascii_case("email") => Medium::Email,
            Some(Value::String(m)) if m.eq_ignore_ascii_case("sms") => Medium::Sms,
            None | Some(Value::Null) => {
                return Err(IssuerError::field("medium", "is required (email or sms)"))
            }
            Some(other) => {
                return Err(IssuerError::field(
                    "medium",
                    &format!("must be \"email\" or \"sms\", not {other}"),
                ))
            }
        };
        let mut customer = NewCustomer {
            name,
            medium,
            email: None,
            phone_number: None,
            organization_label: None,
            email_template: None,
            email_template_id: None,
            auto_issue: None,
        };
        match medium {
            Medium::Email => {
                let email = text_field(body, "email", true, 254)?.unwrap_or_default();
                if !valid_email(&email) {
                    return Err(IssuerError::field(
                        "email",
                        &format!("{email:?} is not a valid email address"),
                    ));
                }
                customer.email = Some(email);
                if let Some(template) = body.get("emailTemplate").filter(|v| !v.is_null()) {
                    let Value::Object(template) = template else {
                        return Err(IssuerError::field(
                            "emailTemplate",
                            "must be an object with subject and body",
                        ));
                    };
                    if let Some(unknown) = template.keys().find(|k| *k != "subject" && *k != "body")
                    {
                        return Err(IssuerError::field(
                            &format!("emailTemplate.{unknown}"),
                            "is not a template part (subject, body)",
                        ));
                    }
                    let part = |name: &str, max| {
                        text_field(template, name, true, max)
                            .map_err(|e| e.within("emailTemplate."))
                            .map(Option::unwrap_or_default)
                    };
                    let subject = part("subject", 200)?;
                    if subject.contains('\n') {
                        return Err(IssuerError::field(
                            "emailTemplate.subject",
                            "must be one line",
                        ));
                    }
                    check_placeholders(&subject, "emailTemplate.subject")?;
                    let body = part("body", 20_000)?;
                    check_placeholders(&body, "emailTemplate.body")?;
                    if !body.contains("{{inviteUrl}}") {
                        return Err(IssuerError::field(
                            "emailTemplate.body",
                            "must contain the {{inviteUrl}} placeholder",
                        ));
                    }
                    customer.email_template = Some(EmailTemplate { subject, body });
                }
                customer.email_template_id = email_template_id_of(body.get("emailTemplateId"))?;
                if customer.email_template.is_some() && customer.email_template_id.is_some() {
                    return Err(IssuerError::field(
                        "emailTemplateId",
                        "and emailTemplate are exclusive: choose a stored template or give one",
                    ));
                }
                for field in ["phoneNumber", "organizationLabel"] {
                    if body.get(field).is_some_and(|v| !v.is_null()) {
                        return Err(IssuerError::field(field, "is for the sms medium only"));
                    }
                }
            }
            Medium::Sms => {
                let phone = text_field(body, "phoneNumber", true, 32)?.unwrap_or_default();
                customer.phone_number = Some(normalise_phone(&phone).ok_or_else(|| {
                    IssuerError::field(
                        "phoneNumber",
                        &format!(
                            "{phone:?} is not a phone number with its country code (e.g. +14155550123)"
                        ),
                    )
                })?);
                customer.organization_label = text_field(body, "organizationLabel", true, 30)?;
                for field in ["email", "emailTemplate", "emailTemplateId"] {
                    if body.get(field).is_some_and(|v| !v.is_null()) {
                        return Err(IssuerError::field(field, "is for the email medium only"));
                    }
                }
            }
        }
        if let Some(auto_issue) = body.get("autoIssue").filter(|v| !v.is_null()) {
            let template = template
                .ok_or_else(|| IssuerError::field("autoIssue.templateId", "is required"))?;
            let values = auto_issue.get("values").unwrap_or(&Value::Null);
            if values.is_null() {
                return Err(IssuerError::field("autoIssue.values", "is required"));
            }
            customer.auto_issue = Some(AutoIssue {
                template_id: template.template_id.clone(),
                values: check_values(template, values, "autoIssue.values")?,
            });
        }
        Ok(customer)
    }

    /// The `emailTemplateId` of a request (the organisation's stored email template), to
    /// look the template up before onboarding.
    pub fn email_template_id(body: &Value) -> Result<Option<String>, IssuerError> {
        email_template_id_of(body.get("emailTemplateId"))
    }

    /// The `autoIssue.templateId` of a request, to look the template up before parsing.
    pub fn template_id(body: &Value) -> Result<Option<String>, IssuerError> {
        match body.get("autoIssue") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(auto_issue)) => {
                if let Some(unknown) = auto_issue
                    .keys()
                    .find(|k| *k != "templateId" && *k != "values")
                {
                    return Err(IssuerError::field(
                        &format!("autoIssue.{unknown}"),
                        "is not an auto-issue field (templateId, values)",
                    ));
                }
                match auto_issue.get("templateId") {
                    Some(Value::String(id)) if !id.trim().is_empty() => {
                        Ok(Some(id.trim().to_string()))
                    }
                    _ => Err(IssuerError::field("autoIssue.templateId", "is required")),
                }
            }
            Some(other) => Err(IssuerError::field(
                "autoIssue",
                &format!("must be an object, not {}", json_type(other)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        for good in ["jane@example.com", "j.doe+x@mail.example.co.uk", "a@b.io"] {
            assert!(valid_email(good), "{good}");
        }
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "jane@@example.com",
            "ja ne@example.com",
            "jane@exa_mple.com",
            "jane.@example.com",
            "jane@example.c",
            "jane@-example.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            normalise_phone("+1 (415) 555-0123").as_deref(),
            Some("+14155550123")
        );
        assert_eq!(
            normalise_phone("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        for bad in [
            "4155550123",
            "+1 415",
            "+0 123456789",
            "+1 415 555 01x3",
            "+1234567890123456",
        ] {
            assert_eq!(normalise_phone(bad), None, "{bad}");
        }
    }
}
