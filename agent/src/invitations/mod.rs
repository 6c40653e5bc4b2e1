//! Out-of-Band 2.0 invitations (DIDComm Messaging v2.1 §"Out Of Band Messages") hosted at
//! short URLs `<public_url>/i/<code>`: the invitation as JSON for wallets, an HTML page with
//! its QR code for people, the QR alone as PNG and SVG, and a custom-scheme deep link.
//! Invitations may expire and may be single use; a spent or expired code says so.

mod store;

pub use store::{InvitationStore, SledInvitationStore};

use lanyard_protocol::didcomm::{now, Attachment, Message};
use lanyard_protocol::encoding::b64u_encode;
use lanyard_protocol::protocols::present_proof::{self, PresentationRequest};
use qrcode::{Color, EcLevel, QrCode};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The OOB 2.0 invitation message type.
pub use lanyard_protocol::protocols::out_of_band::INVITATION as OOB_INVITATION;

/// What to invite with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// The inviter's DID (`from`); the mediator's own when empty.
    #[serde(default)]
    pub from: String,
    /// The invitation's goal code (e.g. `streamlined-vc`).
    #[serde(default)]
    pub goal_code: Option<String>,
    /// The goal, for people.
    #[serde(default)]
    pub goal: Option<String>,
    /// The inviter's name, shown on the invite page and in the wallet.
    #[serde(default)]
    pub label: Option<String>,
    /// Messages to attach (e.g. a credential offer or a presentation request).
    #[serde(default)]
    pub attachments: Vec<Value>,
    /// Seconds since the epoch after which the invitation is refused.
    #[serde(default)]
    pub expires_time: Option<u64>,
    /// Whether the first answer spends it.
    #[serde(default)]
    pub single_use: bool,
}

/// A stored invitation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationRecord {
    /// Its short code (`/i/<code>`).
    pub code: String,
    /// The OOB 2.0 invitation message.
    pub message: Message,
    /// The inviter's name.
    pub label: Option<String>,
    /// Whether the first answer spends it.
    pub single_use: bool,
    /// When it was spent (seconds since the epoch).
    pub used_at: Option<u64>,
    /// When it was made (seconds since the epoch).
    pub created_at: u64,
}

/// Why an invitation cannot be given out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvitationError {
    /// No invitation has this code.
    #[error("no invitation has the code {0:?}")]
    Unknown(String),
    /// It expired at this time.
    #[error("the invitation expired at {}", rfc3339(*.0))]
    Expired(u64),
    /// It was spent at this time.
    #[error("the invitation was already used at {}", rfc3339(*.0))]
    Used(u64),
    /// What was asked for is not a valid invitation (the reason).
    #[error("invalid invitation: {0}")]
    Invalid(String),
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub use lanyard_protocol::credentials::time::format_rfc3339 as rfc3339;

/// A short code: 12 characters of base64url from 72 random bits.
pub fn new_code() -> String {
    let mut bytes = [0u8; 9];
    OsRng.fill_bytes(&mut bytes);
    b64u_encode(bytes)
}

/// Whether `code` could be one of ours (refuses path tricks before any lookup).
pub fn valid_code(code: &str) -> bool {
    code.len() == 12
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl NewInvitation {
    /// Validates and builds the invitation message.
    pub fn build(&self) -> Result<InvitationRecord, InvitationError> {
        if !self.from.starts_with("did:") {
            return Err(InvitationError::Invalid(format!(
                "from {:?} is not a DID",
                self.from
            )));
        }
        if let Some(at) = self.expires_time {
            if at <= now() {
                return Err(InvitationError::Invalid(format!(
                    "expires_time {} is in the past",
                    rfc3339(at)
                )));
            }
        }
        if self.attachments.len() > 8 {
            return Err(InvitationError::Invalid("more than 8 attachments".into()));
        }
        let mut body = json!({ "accept": ["didcomm/v2"] });
        if let Some(goal_code) = &self.goal_code {
            body["goal_code"] = json!(goal_code);
        }
        if let Some(goal) = &self.goal {
            body["goal"] = json!(goal);
        }
        let mut message = Message::new(OOB_INVITATION, body).from(self.from.clone());
        message.typ = None;
        message.expires_time = self.expires_time;
        if let Some(label) = &self.label {
            message.extra.insert("label".into(), json!(label));
        }
        for attachment in &self.attachments {
            if !attachment.is_object() {
                return Err(InvitationError::Invalid(
                    "each attachment is a JSON message".into(),
                ));
            }
            message = message.attachment(Attachment::json(attachment.clone()));
        }
        Ok(InvitationRecord {
            code: new_code(),
            message,
            label: self.label.clone(),
            single_use: self.single_use,
            used_at: None,
            created_at: now(),
        })
    }
}

impl InvitationRecord {
    /// Whether it may be handed out now.
    pub fn check(&self) -> Result<(), InvitationError> {
        if let Some(used_at) = self.used_at {
            return Err(InvitationError::Used(used_at));
        }
        if let Some(at) = self.message.expires_time {
            if at <= now() {
                return Err(InvitationError::Expired(at));
            }
        }
        Ok(())
    }

    /// `<base>?_oob=<base64url(json)>`, the spec's invitation URL form.
    pub fn oob_url(&self, base: &str) -> String {
        format!("{base}?_oob={}", b64u_encode(self.message.to_json()))
    }

    /// The short URL.
    pub fn short_url(&self, public_url: &str) -> String {
        format!("{public_url}/i/{}", self.code)
    }

    /// The app's custom-scheme link carrying the whole invitation.
    pub fn deep_link(&self, scheme: &str) -> String {
        self.oob_url(&format!("{scheme}://oob"))
    }
}

/// The QR code of `text` (error correction M).
fn qr(text: &str) -> Result<QrCode, InvitationError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| InvitationError::Invalid(format!("cannot encode a QR code: {e}")))
}

/// The QR code of `text` as SVG.
pub fn qr_svg(text: &str) -> Result<String, InvitationError> {
    Ok(qr(text)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// The QR code of `text` as a grayscale PNG, `scale` pixels per module, 4-module quiet zone.
pub fn qr_png(text: &str, scale: usize) -> Result<Vec<u8>, InvitationError> {
    let code = qr(text)?;
    let modules = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let side = (modules + 2 * quiet) * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % modules + quiet, i / modules + quiet);
            for y in my * scale..(my + 1) * scale {
                pixels[y * side + mx * scale..y * side + (mx + 1) * scale].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| InvitationError::Invalid(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| InvitationError::Invalid(e.to_string()))?;
    }
    Ok(out)
}

/// `text` with `& < > " '` as HTML entities: safe in element content and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where to get the app, shown on the invite page.
#[derive(Clone, Debug, Default)]
pub struct AppLinks {
    /// The app's custom URL scheme, for deep links.
    pub scheme: String,
    /// The app's App Store page.
    pub app_store_url: Option<String>,
    /// The app's Google Play page.
    pub play_store_url: Option<String>,
}

/// Whether a browser's `User-Agent` is a phone's (iPhone or Android): there the page leads
/// with the button into the app, and the QR code is for scanning from another device.
pub fn is_phone(user_agent: &str) -> bool {
    user_agent.contains("iPhone") || user_agent.contains("Android")
}

/// A credential field's name as people read it: `holderFullName` → `Holder full name`.
fn field_label(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars() {
        if c == '_' {
            label.push(' ');
        } else if c.is_ascii_uppercase() && !label.is_empty() && !label.ends_with(' ') {
            label.push(' ');
            label.push(c.to_ascii_lowercase());
        } else if label.is_empty() {
            label.push(c.to_ascii_uppercase());
        } else {
            label.push(c.to_ascii_lowercase());
        }
    }
    label
}

/// The presentation request an invitation carries, if it is a verifier's.
fn presentation_request(record: &InvitationRecord) -> Option<PresentationRequest> {
    record.message.attachments.iter().find_map(|attachment| {
        let message: Message = serde_json::from_value(attachment.data.json.clone()?).ok()?;
        present_proof::parse_request(&message).ok()
    })
}

/// Where to get the app, as page HTML.
fn store_links(links: &AppLinks) -> String {
    let mut stores = String::new();
    if let Some(url) = &links.app_store_url {
        stores.push_str(&format!(
            "<a href=\"{}\">Download on the App Store</a> ",
            escape(url)
        ));
    }
    if let Some(url) = &links.play_store_url {
        stores.push_str(&format!(
            "<a href=\"{}\">Get it on Google Play</a>",
            escape(url)
        ));
    }
    if stores.is_empty() {
        stores.push_str("Search for \u{201c}Lanyard\u{201d} in the App Store or on Google Play.");
    }
    stores
}

/// A whole page: `title` and `body` are HTML (escaped by the caller).
fn html_page(title: &str, body_class: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto; padding: 0 1rem; color: #1b1f24; }}
.qr svg {{ width: 16rem; height: 16rem; }}
.open {{ display: inline-block; padding: .75rem 1.25rem; background: #0b5fff; color: #fff; border-radius: .5rem; text-decoration: none; }}
.phone .open {{ display: block; text-align: center; font-size: 1.2rem; padding: 1rem; }}
.link {{ word-break: break-all; font-size: .85rem; color: #57606a; }}
</style></head>
<body class="{body_class}">
{body}
</body></html>"#
    )
}

/// The page a person sees when opening the short URL in a browser: who invites them to what
/// (a connection, or a verifier's request naming the fields it asks to see), the button into
/// the app and the QR code. On a phone (`phone`) the button comes first; on a desktop the QR
/// code, to scan with the phone.
pub fn page(
    record: &InvitationRecord,
    short_url: &str,
    links: &AppLinks,
    phone: bool,
) -> Result<String, InvitationError> {
    let svg = qr_svg(short_url)?;
    let goal = record
        .message
        .body
        .get("goal")
        .and_then(Value::as_str)
        .map(|g| format!("<p class=\"goal\">{}</p>", escape(g)))
        .unwrap_or_default();
    let (title, about) = match presentation_request(record) {
        Some(request) => {
            let verifier = record
                .label
                .as_deref()
                .filter(|l| !l.is_empty())
                .unwrap_or(&request.verifier_name);
            let verifier = if verifier.is_empty() {
                "An organisation"
            } else {
                verifier
            };
            let fields: String = request
                .required_fields
                .iter()
                .map(|f| format!("<li>{}</li>", escape(&field_label(f))))
                .collect();
            let fields = if fields.is_empty() {
                "<p>It asks for a credential, with no particular fields.</p>".to_string()
            } else {
                format!("<p>It asks to see these fields of your credential:</p>\n<ul class=\"fields\">{fields}</ul>")
            };
            let title = format!("{} asks to see your credential", escape(verifier));
            let about = format!(
                "{goal}\n{fields}\n<p>Lanyard shows you the request before anything is shared; you choose whether to answer.</p>"
            );
            (title, about)
        }
        None => {
            let inviter = record.label.as_deref().unwrap_or("An organisation");
            (format!("{} invites you to connect", escape(inviter)), goal)
        }
    };
    let deep_link = escape(&record.deep_link(&links.scheme));
    let stores = store_links(links);
    let qr = format!(
        "<div class=\"qr\" role=\"img\" aria-label=\"QR code of the invitation\">{svg}</div>"
    );
    let actions = if phone {
        format!(
            "<p><a class=\"open\" href=\"{deep_link}\">Open in Lanyard</a></p>\n\
             <p>No app yet? {stores}</p>\n\
             <p>On another device? Scan this code with the Lanyard app on your phone:</p>\n{qr}"
        )
    } else {
        format!(
            "<p>Scan this code with the Lanyard app on your phone:</p>\n{qr}\n\
             <p>On your phone already? <a class=\"open\" href=\"{deep_link}\">Open in Lanyard</a></p>\n\
             <p>No app yet? {stores}</p>"
        )
    };
    let expiry = record
        .message
        .expires_time
        .map(|at| format!("<p>This invitation expires at {}.</p>", rfc3339(at)))
        .unwrap_or_default();
    let body = format!(
        "<h1>{title}</h1>\n{about}\n{actions}\n{expiry}\n<p class=\"link\">{}</p>",
        escape(short_url)
    );
    Ok(html_page(
        &title,
        if phone { "phone" } else { "desktop" },
        &body,
    ))
}

/// The page a person sees for an invitation that cannot be used: what happened and what to
/// do. `record` is the invitation when it is known (its label names whom to ask).
pub fn error_page(error: &InvitationError, record: Option<&InvitationRecord>) -> String {
    let whom = record
        .and_then(|r| r.label.as_deref())
        .filter(|l| !l.trim().is_empty())
        .map_or_else(|| "the organisation that sent it".to_string(), escape);
    let (title, text) = match error {
        InvitationError::Expired(at) => (
            "This invitation has expired",
            format!(
                "<p>It expired at {}.</p>\n<p>Ask {whom} for a new invitation.</p>",
                rfc3339(*at)
            ),
        ),
        InvitationError::Used(at) => (
            "This invitation was already used",
            format!(
                "<p>It was used at {} and works only once.</p>\n\
                 <p>If it was you, open the Lanyard app: what it brought is there.</p>\n\
                 <p>Ask {whom} for a new invitation if you still need one.</p>",
                rfc3339(*at)
            ),
        ),
        InvitationError::Invalid(problem) => (
            "This invitation cannot be shown just now",
            format!(
                "<p>{}.</p>\n<p>Try the link again in a few minutes.</p>",
                escape(problem)
            ),
        ),
        InvitationError::Unknown(_) => (
            "This invitation link does not work",
            "<p>No invitation has this link.</p>\n\
             <p>Check that the whole link was copied, or ask the organisation that sent it for a new invitation.</p>"
                .to_string(),
        ),
    };
    html_page(title, "error", &format!("<h1>{title}</h1>\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_516_269_022), "2018-01-18T09:50:22Z");
        assert_eq!(rfc3339(1_795_478_400), "2026-11-24T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn codes_are_short_and_checked() {
        let code = new_code();
        assert!(valid_code(&code), "{code}");
        for bad in ["", "../../etc/pa", "abc", "abcdefghijk!", "abcdefghijklm"] {
            assert!(!valid_code(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn html_is_escaped() {
        let record = NewInvitation {
            from: "did:example:org".into(),
            label: Some("<script>alert(1)</script>".into()),
            goal: Some("\"quoted\" & <b>".into()),
            ..NewInvitation::default()
        }
        .build()
        .unwrap();
        let html = page(
            &record,
            "http://x/i/abc",
            &AppLinks {
                scheme: "lanyard".into(),
                ..AppLinks::default()
            },
            false,
        )
        .unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&quot;quoted&quot; &amp; &lt;b&gt;"));
    }

    #[test]
    fn error_pages_escape_the_label_and_say_what_to_do() {
        let mut record = NewInvitation {
            from: "did:example:org".into(),
            label: Some("<img src=x onerror=alert(1)>".into()),
            ..NewInvitation::default()
        }
        .build()
        .unwrap();
        record.used_at = Some(1_795_478_400);
        let html = error_page(&record.check().unwrap_err(), Some(&record));
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("Ask &lt;img src=x onerror=alert(1)&gt; for a new invitation"));
        assert!(html.contains("2026-11-24T00:00:00Z"), "{html}");
        let unknown = error_page(&InvitationError::Unknown("<b>".into()), None);
        assert!(
            unknown.contains("does not work") && !unknown.contains("<b>"),
            "{unknown}"
        );
        let down = error_page(&InvitationError::Invalid("<down>".into()), None);
        assert!(down.contains("cannot be shown just now") && down.contains("&lt;down&gt;"));
    }

    #[test]
    fn field_names_read_as_words() {
        assert_eq!(field_label("holderFullName"), "Holder full name");
        assert_eq!(field_label("skill"), "Skill");
        assert_eq!(field_label("date_of_birth"), "Date of birth");
        assert_eq!(field_label("verifiedHello1"), "Verified hello1");
    }

    #[test]
    fn phones_are_known_by_their_user_agent() {
        assert!(is_phone(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"
        ));
        assert!(is_phone("Mozilla/5.0 (Linux; Android 14; Pixel 8)"));
        assert!(!is_phone("Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0"));
    }

    #[test]
    fn past_expiry_and_non_dids_are_refused() {
        let past = NewInvitation {
            from: "did:example:org".into(),
            expires_time: Some(1),
            ..NewInvitation::default()
        };
        assert!(matches!(past.build(), Err(InvitationError::Invalid(_))));
        let not_did = NewInvitation {
            from: "mailto:x".into(),
            ..NewInvitation::default()
        };
        assert!(matches!(not_did.build(), Err(InvitationError::Invalid(_))));
    }
}
