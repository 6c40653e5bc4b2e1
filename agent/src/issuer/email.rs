//! Invitation emails: the placeholders an email may use, an organisation's own email
//! templates (the seed's "Email Template": a name, a subject, an HTML and a text body, an
//! optional logo; stored behind [`EmailTemplateStorage`]), and the one rendering of an
//! invitation into a subject, a plain-text part and a responsive HTML part with its inline
//! images (the QR code, then the logo). The JSON API, the console's pages and the mailer all
//! go through it.
//!
//! Placeholders are `{{customerName}}`, `{{organizationName}}` and `{{inviteUrl}}` (the names
//! the onboarding request's inline `emailTemplate` has always used); any other `{{...}}` is
//! refused naming it. In the HTML body every value is HTML-escaped; the HTML around the values
//! is the organisation's own, sent to its own customers, and the console shows it only inside
//! a sandboxed frame (no scripts, no same-origin access).

use std::future::Future;

use askama::Template as _;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::customers::EmailTemplate;
use super::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use super::templates::json_type;
use super::time::now_ms;
use super::{new_object_id, Issuer, IssuerError, Org};
use crate::invitations::escape as html_escape;
use crate::storage::StorageError;

/// The placeholders an email template may use, without their braces.
pub const PLACEHOLDERS: [&str; 3] = ["customerName", "organizationName", "inviteUrl"];
/// The placeholder a text body must hold (a reader of the text part needs the link).
const LINK: &str = "{{inviteUrl}}";

/// Most email templates one organisation keeps.
pub const MAX_EMAIL_TEMPLATES: usize = 50;
/// Largest logo, in bytes (it travels in every invitation email).
pub const MAX_LOGO_BYTES: usize = 100 * 1024;
const MAX_NAME: usize = 100;
const MAX_SUBJECT: usize = 200;
const MAX_TEXT_BODY: usize = 20_000;
const MAX_HTML_BODY: usize = 50_000;

/// Collection of the issuer store: `<org id>/<template id>` → [`StoredEmailTemplate`].
const EMAIL_TEMPLATES: &str = "email_templates";

/// The content id of the QR code's inline image.
pub const QR_CID: &str = "invite-qr";
/// The content id of the logo's inline image.
pub const LOGO_CID: &str = "org-logo";

/// What the placeholders stand for in one email.
#[derive(Clone, Copy)]
pub struct InviteValues<'a> {
    /// `{{customerName}}`.
    pub customer_name: &'a str,
    /// `{{organizationName}}`.
    pub organization_name: &'a str,
    /// `{{inviteUrl}}`: the short invite URL (`<agent>/i/<code>`).
    pub url: &'a str,
}

impl InviteValues<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "customerName" => Some(self.customer_name),
            "organizationName" => Some(self.organization_name),
            "inviteUrl" => Some(self.url),
            _ => None,
        }
    }
}

/// A text cut at its placeholders: (the text before each, its name) in order, then the rest.
type Split<'a> = (Vec<(&'a str, &'a str)>, &'a str);

/// The placeholders of `text` in order, as (the text before it, its name); the rest after the
/// last one is returned apart. An unclosed `{{` is an error.
fn split_placeholders(text: &str) -> Result<Split<'_>, &'static str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("has a {{ without its closing }}")?;
        parts.push((&rest[..start], &after[..end]));
        rest = &after[end + 2..];
    }
    Ok((parts, rest))
}

/// Checks that every `{{...}}` in `text` is one of [`PLACEHOLDERS`]; the error names `field`
/// and the first unknown placeholder.
pub fn check_placeholders(text: &str, field: &str) -> Result<(), IssuerError> {
    let (parts, _) =
        split_placeholders(text).map_err(|problem| IssuerError::field(field, problem))?;
    if let Some((_, unknown)) = parts.iter().find(|(_, name)| !PLACEHOLDERS.contains(name)) {
        let shown: String = unknown.chars().take(40).collect();
        let allowed: Vec<String> = PLACEHOLDERS
            .iter()
            .map(|p| format!("{{{{{p}}}}}"))
            .collect();
        return Err(IssuerError::field(
            field,
            &format!(
                "uses the unknown placeholder {{{{{shown}}}}} (allowed: {})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// `text` with its placeholders replaced by `values`, each escaped for HTML when `html`.
/// A placeholder it does not know (never in a checked template) is left as written.
fn fill(text: &str, values: &InviteValues<'_>, html: bool) -> String {
    let Ok((parts, rest)) = split_placeholders(text) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len() + 64);
    for (before, name) in parts {
        out.push_str(before);
        match values.get(name) {
            Some(value) if html => out.push_str(&html_escape(value)),
            Some(value) => out.push_str(value),
            None => {
                out.push_str("{{");
                out.push_str(name);
                out.push_str("}}");
            }
        }
    }
    out.push_str(rest);
    out
}

/// Plain text as HTML paragraphs (blank lines part them, single newlines break lines), escaped.
fn paragraphs(text: &str) -> String {
    html_escape(text)
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            format!(
                "<p style=\"margin:0 0 16px;\">{}</p>",
                p.trim().replace('\n', "<br>")
            )
        })
        .collect()
}

/// An organisation's logo for its emails: a PNG, JPEG or GIF of at most [`MAX_LOGO_BYTES`].
/// `Debug` shows its type and size.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logo {
    /// `image/png`, `image/jpeg` or `image/gif`, read from the bytes themselves.
    pub media_type: String,
    /// The image (base64 in the stored JSON).
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Logo({}, {} bytes)", self.media_type, self.bytes.len())
    }
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

impl Logo {
    /// A logo from an image's bytes (an upload); the type is read from the bytes, and the
    /// error names `field`.
    pub fn from_bytes(bytes: Vec<u8>, field: &str) -> Result<Logo, IssuerError> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(IssuerError::field(
                field,
                &format!(
                    "is {} bytes; a logo may have at most {MAX_LOGO_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let media_type = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            "image/jpeg"
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            "image/gif"
        } else {
            return Err(IssuerError::field(field, "is not a PNG, JPEG or GIF image"));
        };
        Ok(Logo {
            media_type: media_type.into(),
            bytes,
        })
    }

    /// A logo from a `data:image/...;base64,...` URL (the API's form); the error names `field`.
    pub fn from_data_url(text: &str, field: &str) -> Result<Logo, IssuerError> {
        let Some((head, data)) = text
            .strip_prefix("data:")
            .and_then(|rest| rest.split_once(','))
        else {
            return Err(IssuerError::field(
                field,
                "must be a data URL (data:image/png;base64,...) or null",
            ));
        };
        let Some(declared) = head.strip_suffix(";base64") else {
            return Err(IssuerError::field(field, "must be a base64 data URL"));
        };
        if data.len() > MAX_LOGO_BYTES.div_ceil(3) * 4 + 4 {
            return Err(IssuerError::field(
                field,
                &format!("is larger than {MAX_LOGO_BYTES} bytes"),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| IssuerError::field(field, &format!("is not valid base64: {e}")))?;
        let logo = Logo::from_bytes(bytes, field)?;
        if !declared.eq_ignore_ascii_case(&logo.media_type) {
            return Err(IssuerError::field(
                field,
                &format!("says {declared:?} but holds {}", logo.media_type),
            ));
        }
        Ok(logo)
    }

    /// The logo as a `data:` URL.
    pub fn data_url(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.media_type,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }
}

/// What an email template says: a create or update request, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTemplateSpec {
    /// What the organisation calls it (shown in the console's lists).
    pub name: String,
    /// The subject line (one line; placeholders allowed).
    pub subject: String,
    /// The message inside the email's frame (the organisation's HTML; placeholders allowed,
    /// filled escaped). The frame adds the logo or name, the button and the QR code.
    pub html_body: String,
    /// The plain-text part (placeholders allowed; must hold `{{inviteUrl}}`).
    pub text_body: String,
    /// The logo shown at the top, when there is one.
    pub logo: Option<Logo>,
}

/// The request fields of an email template.
const SPEC_FIELDS: [&str; 5] = ["name", "subject", "htmlBody", "textBody", "logo"];

/// `text` trimmed and checked: required, at most `max` characters, no control characters
/// but newlines when `multiline` (CRLF is read as a newline).
fn clean_text(text: &str, field: &str, max: usize, multiline: bool) -> Result<String, IssuerError> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(IssuerError::field(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(IssuerError::field(
            field,
            &format!("is longer than {max} characters"),
        ));
    }
    if !multiline && text.contains('\n') {
        return Err(IssuerError::field(field, "must be one line"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
    {
        return Err(IssuerError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_string())
}

impl EmailTemplateSpec {
    /// Validates a template's parts (a console form's fields or a request's); the error names
    /// the first part that is wrong by its API name (`name`, `subject`, `htmlBody`,
    /// `textBody`, `logo`).
    pub fn new(
        name: &str,
        subject: &str,
        html_body: &str,
        text_body: &str,
        logo: Option<Logo>,
    ) -> Result<EmailTemplateSpec, IssuerError> {
        let name = clean_text(name, "name", MAX_NAME, false)?;
        let subject = clean_text(subject, "subject", MAX_SUBJECT, false)?;
        check_placeholders(&subject, "subject")?;
        let html_body = clean_text(html_body, "htmlBody", MAX_HTML_BODY, true)?;
        check_placeholders(&html_body, "htmlBody")?;
        let text_body = clean_text(text_body, "textBody", MAX_TEXT_BODY, true)?;
        check_placeholders(&text_body, "textBody")?;
        if !text_body.contains(LINK) {
            return Err(IssuerError::field(
                "textBody",
                &format!("must contain the {LINK} placeholder (the text part's only way to the invitation)"),
            ));
        }
        Ok(EmailTemplateSpec {
            name,
            subject,
            html_body,
            text_body,
            logo,
        })
    }

    /// Validates a create or update request's JSON body. `logo` is a `data:` URL or null.
    pub fn parse(body: &Value) -> Result<EmailTemplateSpec, IssuerError> {
        let Value::Object(body) = body else {
            return Err(IssuerError::bad_request(&format!(
                "the body must be a JSON object, not {}",
                json_type(body)
            )));
        };
        if let Some(unknown) = body.keys().find(|k| !SPEC_FIELDS.contains(&k.as_str())) {
            return Err(IssuerError::field(
                unknown,
                &format!(
                    "is not an email template field (expected {})",
                    SPEC_FIELDS.join(", ")
                ),
            ));
        }
        let text = |field: &str| -> Result<&str, IssuerError> {
            match body.get(field) {
                None | Some(Value::Null) => Err(IssuerError::field(field, "is required")),
                Some(Value::String(text)) => Ok(text),
                Some(other) => Err(IssuerError::field(
                    field,
                    &format!("must be a string, not {}", json_type(other)),
                )),
            }
        };
        let (name, subject, html_body, text_body) = (
            text("name")?,
            text("subject")?,
            text("htmlBody")?,
            text("textBody")?,
        );
        let logo = match body.get("logo") {
            None | Some(Value::Null) => None,
            Some(Value::String(url)) => Some(Logo::from_data_url(url, "logo")?),
            Some(other) => {
                return Err(IssuerError::field(
                    "logo",
                    &format!("must be a data URL or null, not {}", json_type(other)),
                ))
            }
        };
        EmailTemplateSpec::new(name, subject, html_body, text_body, logo)
    }
}

/// A stored email template of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEmailTemplate {
    /// 24 hex digits: the creation time then random digits, so that keys list oldest first.
    pub id: String,
    /// The organisation it belongs to.
    pub org_id: String,
    /// What it says.
    #[serde(flatten)]
    pub spec: EmailTemplateSpec,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
    /// When it last changed (ms since the epoch).
    pub updated_ms: u64,
}

impl StoredEmailTemplate {
    fn key(&self) -> String {
        format!("{}/{}", self.org_id, self.id)
    }

    /// The template as the API shows it.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.spec.name,
            "subject": self.spec.subject,
            "htmlBody": self.spec.html_body,
            "textBody": self.spec.text_body,
            "logo": self.spec.logo.as_ref().map(Logo::data_url),
            "dateCreated": super::iso_millis(self.created_ms),
            "dateUpdated": super::iso_millis(self.updated_ms),
        })
    }
}

fn is_template_id(id: &str) -> bool {
    id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The expectation that `template` is stored exactly as it is.
fn stored_as(template: &StoredEmailTemplate) -> Result<Expect, StorageError> {
    Ok(Expect::Equals {
        collection: EMAIL_TEMPLATES,
        key: template.key(),
        value: serde_json::to_vec(template).map_err(|e| StorageError::Corrupt(e.to_string()))?,
    })
}

/// Where email templates are kept: every [`IssuerStorage`] backend (sled, PostgreSQL) is one,
/// as records of one collection keyed `<org id>/<template id>`. Writes are conditional on
/// what was read, so concurrent edits (from several agents too) do not overwrite each other.
pub trait EmailTemplateStorage: IssuerStorage + Sized {
    /// An organisation's template by id (None when absent or not a template id).
    fn email_template(
        &self,
        org_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredEmailTemplate>, StorageError>> + Send {
        async move {
            if !is_template_id(id) {
                return Ok(None);
            }
            self.get_json(EMAIL_TEMPLATES, &format!("{org_id}/{id}"))
                .await
        }
    }

    /// A page of an organisation's templates (oldest first, skipping `skip`, at most
    /// `limit`) and how many it has.
    fn email_templates(
        &self,
        org_id: &str,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<StoredEmailTemplate>, usize), StorageError>> + Send {
        async move {
            let prefix = format!("{org_id}/");
            let total = self.count(EMAIL_TEMPLATES, &prefix).await?;
            let items = self
                .scan_json(EMAIL_TEMPLATES, &prefix, skip, limit)
                .await?;
            Ok((items, total))
        }
    }

    /// Stores a new template; a Conflict when its id is taken.
    fn insert_email_template(
        &self,
        template: &StoredEmailTemplate,
    ) -> impl Future<Output = Result<(), BatchError>> + Send {
        async move {
            let absent = Expect::Absent {
                collection: EMAIL_TEMPLATES,
                key: template.key(),
            };
            let write = Write::put(EMAIL_TEMPLATES, template.key(), template)?;
            self.apply(vec![absent], vec![write]).await
        }
    }

    /// Replaces `before` by `after` (same organisation and id); a Conflict when the stored
    /// template is no longer `before`.
    fn replace_email_template(
        &self,
        before: &StoredEmailTemplate,
        after: &StoredEmailTemplate,
    ) -> impl Future<Output = Result<(), BatchError>> + Send {
        async move {
            if after.key() != before.key() {
                return Err(BatchError::Conflict);
            }
            let write = Write::put(EMAIL_TEMPLATES, after.key(), after)?;
            self.apply(vec![stored_as(before)?], vec![write]).await
        }
    }

    /// Removes `template`; a Conflict when the stored one is no longer it (or is gone).
    fn remove_email_template(
        &self,
        template: &StoredEmailTemplate,
    ) -> impl Future<Output = Result<(), BatchError>> + Send {
        async move {
            let write = Write::delete(EMAIL_TEMPLATES, template.key());
            self.apply(vec![stored_as(template)?], vec![write]).await
        }
    }
}

impl<S: IssuerStorage> EmailTemplateStorage for S {}

/// What an invitation email is made from: the default, an onboarding request's inline
/// template, or a stored one.
#[derive(Clone, Copy)]
pub(crate) enum EmailSource<'a> {
    /// Lanyard's default invitation.
    Default,
    /// `emailTemplate` of the onboarding request: a subject and a text body (the HTML part
    /// shows the text as paragraphs).
    Inline(&'a EmailTemplate),
    /// One of the organisation's email templates.
    Stored(&'a EmailTemplateSpec),
}

const DEFAULT_SUBJECT: &str = "{{organizationName}} invites you to connect";
const DEFAULT_TEXT: &str = "Hello {{customerName}},\n\n\
    {{organizationName}} would like to send you a verifiable credential. Install the \
    Lanyard app on your phone, then scan the QR code in this email, or open this link \
    on the phone:\n\n{{inviteUrl}}\n\nThe link works once and only for you.";
const DEFAULT_HTML: &str = "<p style=\"margin:0 0 16px;\">Hello {{customerName}},</p>\
    <p style=\"margin:0 0 16px;\">{{organizationName}} would like to send you a verifiable \
    credential: a digital card you keep in the Lanyard app on your phone and show when you \
    choose to.</p>\
    <p style=\"margin:0;\">Install the Lanyard app, then open your invitation.</p>";

/// An image carried in the email and shown by its content id (`cid:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineImage {
    /// The `Content-ID` (without angle brackets), as the HTML's `cid:` names it.
    pub content_id: &'static str,
    /// Its media type.
    pub media_type: String,
    /// The image.
    pub bytes: Vec<u8>,
}

/// An invitation email ready to send: the subject, the plain-text part, the HTML part and
/// the images it shows by `cid:` (the QR code first, then the logo if any).
#[derive(Clone, Debug)]
pub struct RenderedEmail {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// The inline images.
    pub images: Vec<InlineImage>,
}

impl RenderedEmail {
    /// The HTML with every `cid:` image replaced by a `data:` URL, for a preview in a page.
    pub fn html_with_data_images(&self) -> String {
        self.images.iter().fold(self.html.clone(), |html, image| {
            html.replace(
                &format!("cid:{}", image.content_id),
                &format!(
                    "data:{};base64,{}",
                    image.media_type,
                    base64::engine::general_purpose::STANDARD.encode(&image.bytes)
                ),
            )
        })
    }
}

/// The frame every invitation email's HTML part has (`templates/email/invitation.html`):
/// table layout and inline styles that mail clients render, a media query for phones.
#[derive(askama::Template)]
#[template(path = "email/invitation.html")]
struct InvitationHtml<'a> {
    subject: &'a str,
    organization: &'a str,
    /// The message, already HTML (escaped values in the organisation's HTML).
    content: &'a str,
    link: &'a str,
    logo_cid: Option<&'static str>,
    qr_cid: &'static str,
}

/// Renders an invitation email from `source` for `values`, with the QR code `qr_png` and
/// the logo (the stored template's) when there is one.
pub(crate) fn render(
    source: EmailSource<'_>,
    values: &InviteValues<'_>,
    qr_png: Vec<u8>,
) -> Result<RenderedEmail, IssuerError> {
    let (subject, text, content, logo) = match source {
        EmailSource::Default => (
            fill(DEFAULT_SUBJECT, values, false),
            fill(DEFAULT_TEXT, values, false),
            fill(DEFAULT_HTML, values, true),
            None,
        ),
        EmailSource::Inline(template) => {
            let text = fill(&template.body, values, false);
            let content = paragraphs(&text);
            (fill(&template.subject, values, false), text, content, None)
        }
        EmailSource::Stored(spec) => (
            fill(&spec.subject, values, false),
            fill(&spec.text_body, values, false),
            fill(&spec.html_body, values, true),
            spec.logo.as_ref(),
        ),
    };
    // One line, whatever the values hold (a customer's name may have a newline).
    let subject: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let html = InvitationHtml {
        subject: &subject,
        organization: values.organization_name,
        content: &content,
        link: values.url,
        logo_cid: logo.map(|_| LOGO_CID),
        qr_cid: QR_CID,
    }
    .render()
    .map_err(|e| IssuerError::internal(&format!("rendering the invitation email: {e}")))?;
    let mut images = vec![InlineImage {
        content_id: QR_CID,
        media_type: "image/png".into(),
        bytes: qr_png,
    }];
    if let Some(logo) = logo {
        images.push(InlineImage {
            content_id: LOGO_CID,
            media_type: logo.media_type.clone(),
            bytes: logo.bytes.clone(),
        });
    }
    Ok(RenderedEmail {
        subject,
        text,
        html,
        images,
    })
}

/// The customer a preview is written to.
pub const PREVIEW_CUSTOMER: &str = "Jane Doe";

impl<S: IssuerStorage> Issuer<S> {
    /// Creates an email template for `org` from a create request's body.
    pub async fn create_email_template(
        &self,
        org: &Org,
        body: &Value,
    ) -> Result<StoredEmailTemplate, IssuerError> {
        self.add_email_template(org, EmailTemplateSpec::parse(body)?)
            .await
    }

    /// Stores a validated email template for `org`; refused past [`MAX_EMAIL_TEMPLATES`].
    pub async fn add_email_template(
        &self,
        org: &Org,
        spec: EmailTemplateSpec,
    ) -> Result<StoredEmailTemplate, IssuerError> {
        let (_, total) = self.storage.email_templates(&org.record.id, 0, 0).await?;
        if total >= MAX_EMAIL_TEMPLATES {
            return Err(IssuerError::conflict(&format!(
                "{} has {total} email templates, the most it may keep ({MAX_EMAIL_TEMPLATES}); delete one first",
                org.record.name
            )));
        }
        let now = now_ms();
        let template = StoredEmailTemplate {
            id: format!("{now:012x}{}", &new_object_id()[..12]),
            org_id: org.record.id.clone(),
            spec,
            created_ms: now,
            updated_ms: now,
        };
        self.storage.insert_email_template(&template).await?;
        tracing::info!(org = %org.record.id, email_template = %template.id, "email template created");
        Ok(template)
    }

    /// An email template of `org` by id; another organisation's is not found.
    pub async fn email_template(
        &self,
        org: &Org,
        id: &str,
    ) -> Result<StoredEmailTemplate, IssuerError> {
        self.storage
            .email_template(&org.record.id, id)
            .await?
            .ok_or_else(|| IssuerError::not_found(&format!("no email template has the id {id:?}")))
    }

    /// One page of `org`'s email templates, oldest first, and how many there are.
    pub async fn email_templates(
        &self,
        org: &Org,
        page: usize,
        page_size: usize,
    ) -> Result<(Vec<StoredEmailTemplate>, usize), IssuerError> {
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        Ok(self
            .storage
            .email_templates(&org.record.id, skip, page_size)
            .await?)
    }

    /// Replaces what an email template of `org` says by a request's body.
    pub async fn update_email_template(
        &self,
        org: &Org,
        id: &str,
        body: &Value,
    ) -> Result<StoredEmailTemplate, IssuerError> {
        let spec = EmailTemplateSpec::parse(body)?;
        self.change_email_template(org, id, spec).await
    }

    /// Replaces what an email template of `org` says by `spec`.
    pub async fn change_email_template(
        &self,
        org: &Org,
        id: &str,
        spec: EmailTemplateSpec,
    ) -> Result<StoredEmailTemplate, IssuerError> {
        let before = self.email_template(org, id).await?;
        let mut after = before.clone();
        after.spec = spec;
        after.updated_ms = now_ms();
        self.storage.replace_email_template(&before, &after).await?;
        Ok(after)
    }

    /// Deletes an email template of `org`. Customers onboarded with it and not yet invited
    /// get the default email when their invitation is sent again.
    pub async fn delete_email_template(
        &self,
        org: &Org,
        id: &str,
    ) -> Result<StoredEmailTemplate, IssuerError> {
        let template = self.email_template(org, id).await?;
        self.storage.remove_email_template(&template).await?;
        tracing::info!(org = %org.record.id, email_template = %id, "email template deleted");
        Ok(template)
    }

    /// The invitation email `spec` makes (the default email when None) for a sample customer
    /// of `org`, as it would be sent: what the console's preview and the API's show.
    pub fn preview_email(
        &self,
        org: &Org,
        spec: Option<&EmailTemplateSpec>,
    ) -> Result<RenderedEmail, IssuerError> {
        let url = format!("{}/i/PREVIEW", self.public_url);
        let qr = crate::invitations::qr_png(&url, 8)
            .map_err(|e| IssuerError::internal(&e.to_string()))?;
        let values = InviteValues {
            customer_name: PREVIEW_CUSTOMER,
            organization_name: &org.record.name,
            url: &url,
        };
        render(
            spec.map_or(EmailSource::Default, EmailSource::Stored),
            &values,
            qr,
        )
    }
}

/// A preview as the API answers it: the subject, the text part and the HTML part with its
/// images as `data:` URLs.
pub fn preview_json(preview: &RenderedEmail) -> Value {
    let mut value = Map::new();
    value.insert("subject".into(), json!(preview.subject));
    value.insert("text".into(), json!(preview.text));
    value.insert("html".into(), json!(preview.html_with_data_images()));
    Value::Object(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> InviteValues<'static> {
        InviteValues {
            customer_name: "<b>Ann</b> & \"Co\"",
            organization_name: "Acme",
            url: "https://agent.test/i/abc",
        }
    }

    #[test]
    fn placeholders_fill_and_escape_in_html_only() {
        let text = "Hi {{customerName}} from {{organizationName}}: {{inviteUrl}}";
        assert_eq!(
            fill(text, &values(), false),
            "Hi <b>Ann</b> & \"Co\" from Acme: https://agent.test/i/abc"
        );
        assert_eq!(
            fill(text, &values(), true),
            "Hi &lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Co&quot; from Acme: https://agent.test/i/abc"
        );
        // A value that looks like a placeholder is not filled again.
        let sneaky = InviteValues {
            customer_name: "{{inviteUrl}}",
            ..values()
        };
        assert_eq!(fill("{{customerName}}", &sneaky, false), "{{inviteUrl}}");
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused_by_name() {
        check_placeholders("{{customerName}} {{inviteUrl}} {{organizationName}}", "f").unwrap();
        let error = check_placeholders("Hi {{customer_name}}", "subject").unwrap_err();
        assert_eq!(
            error.to_string(),
            "subject uses the unknown placeholder {{customer_name}} (allowed: {{customerName}}, {{organizationName}}, {{inviteUrl}})"
        );
        let error = check_placeholders("Hi {{customerName", "textBody").unwrap_err();
        assert_eq!(
            error.to_string(),
            "textBody has a {{ without its closing }}"
        );
    }

    #[test]
    fn a_spec_names_the_part_that_is_wrong() {
        let ok = EmailTemplateSpec::new("Welcome", "Hi", "<p>Hi</p>", "Go: {{inviteUrl}}", None);
        assert!(ok.is_ok());
        let cases = [
            (
                ("", "Hi", "<p>x</p>", "{{inviteUrl}}"),
                "name must not be empty",
            ),
            (
                ("W", "Hi\nthere", "<p>x</p>", "{{inviteUrl}}"),
                "subject must be one line",
            ),
            (
                ("W", "Hi", "<p>{{x}}</p>", "{{inviteUrl}}"),
                "htmlBody uses the unknown placeholder {{x}}",
            ),
            (
                ("W", "Hi", "<p>x</p>", "no link"),
                "textBody must contain the {{inviteUrl}} placeholder",
            ),
        ];
        for ((name, subject, html, text), expected) in cases {
            let error = EmailTemplateSpec::new(name, subject, html, text, None).unwrap_err();
            assert!(
                error.to_string().starts_with(expected),
                "{error} / {expected}"
            );
        }
    }

    #[test]
    fn logos_are_images_read_from_their_bytes() {
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        let logo = Logo::from_bytes(png.clone(), "logo").unwrap();
        assert_eq!(logo.media_type, "image/png");
        assert_eq!(Logo::from_data_url(&logo.data_url(), "logo").unwrap(), logo);
        let svg = b"<svg onload=alert(1)>".to_vec();
        assert_eq!(
            Logo::from_bytes(svg, "logo").unwrap_err().to_string(),
            "logo is not a PNG, JPEG or GIF image"
        );
        let lying = format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&png)
        );
        assert_eq!(
            Logo::from_data_url(&lying, "logo").unwrap_err().to_string(),
            "logo says \"image/jpeg\" but holds image/png"
        );
        let big = vec![0u8; MAX_LOGO_BYTES + 1];
        assert!(Logo::from_bytes(big, "logo")
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }

    #[test]
    fn the_html_part_escapes_every_value_and_shows_the_images_by_cid() {
        let spec = EmailTemplateSpec::new(
            "W",
            "For {{customerName}}",
            "<p>Dear {{customerName}}</p>",
            "Dear {{customerName}}: {{inviteUrl}}",
            Some(Logo::from_bytes(b"GIF89a...".to_vec(), "logo").unwrap()),
        )
        .unwrap();
        let hostile = InviteValues {
            organization_name: "<script>alert(1)</script>",
            ..values()
        };
        let email = render(EmailSource::Stored(&spec), &hostile, vec![1, 2, 3]).unwrap();
        assert_eq!(email.subject, "For <b>Ann</b> & \"Co\"");
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(!email.html.contains("<b>Ann"), "{}", email.html);
        // The frame writes numeric references (the template engine), the values named ones.
        assert!(email
            .html
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(email
            .html
            .contains("<p>Dear &lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Co&quot;</p>"));
        assert!(email.html.contains("src=\"cid:invite-qr\""));
        assert!(email.html.contains("src=\"cid:org-logo\""));
        assert!(email.html.contains("href=\"https://agent.test/i/abc\""));
        let two_lines = InviteValues {
            customer_name: "Ann\r\nBcc: eve@example.com",
            ..values()
        };
        let email_of_two_lines = render(EmailSource::Stored(&spec), &two_lines, vec![]).unwrap();
        assert_eq!(email_of_two_lines.subject, "For Ann  Bcc: eve@example.com");
        let ids: Vec<&str> = email.images.iter().map(|i| i.content_id).collect();
        assert_eq!(ids, ["invite-qr", "org-logo"]);
        assert!(email
            .html_with_data_images()
            .contains("src=\"data:image/gif;base64,"));
    }
}
