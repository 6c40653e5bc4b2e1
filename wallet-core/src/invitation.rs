//! Reading an invitation in every form a scanner or the OS hands over: an `https` URL with
//! `_oob`, the agent's short invite URL (fetched as JSON), a custom-scheme deep link
//! (`lanyard://oob?_oob=...`), a `didcomm://` link, or the raw OOB 2.0 JSON.

use serde_json::Value;

use super::WalletError;
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::encoding::b64u_decode;
use lanyard_protocol::protocols::out_of_band::{self, Invitation};
use lanyard_protocol::protocols::ProtocolError;

/// Largest invitation accepted (a QR code holds far less).
const MAX_INVITATION_BYTES: usize = 64 * 1024;

/// Where the invitation text came from, once read.
pub enum Source {
    /// The invitation itself.
    Inline(Box<Message>),
    /// A short URL to fetch it from.
    Fetch(String),
}

fn percent_decode(text: &str) -> Result<String, WalletError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        WalletError::InvalidInvitation("a bad %-escape in the link".into())
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| WalletError::InvalidInvitation("the link is not UTF-8".into()))
}

/// Reads what was scanned or tapped.
pub fn read(text: &str) -> Result<Source, WalletError> {
    let text = text.trim();
    if text.len() > MAX_INVITATION_BYTES {
        return Err(WalletError::InvalidInvitation(
            "it is longer than any invitation".into(),
        ));
    }
    if text.starts_with('{') {
        return Ok(Source::Inline(Box::new(parse_message(text.as_bytes())?)));
    }
    let Some((scheme, rest)) = text.split_once(':') else {
        return Err(WalletError::InvalidInvitation(
            "it is neither a link nor an invitation".into(),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if !scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        || scheme.is_empty()
    {
        return Err(WalletError::InvalidInvitation("it is not a link".into()));
    }
    let query = rest
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q));
    if let Some(query) = query {
        for pair in query.split('&') {
            if let Some(value) = pair.strip_prefix("_oob=") {
                let encoded = percent_decode(value)?;
                let json = b64u_decode(encoded.trim_end_matches('='))
                    .or_else(|_| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(&encoded)
                    })
                    .map_err(|_| WalletError::InvalidInvitation("_oob is not base64url".into()))?;
                return Ok(Source::Inline(Box::new(parse_message(&json)?)));
            }
        }
    }
    if scheme == "https" || scheme == "http" {
        if !rest.starts_with("//") {
            return Err(WalletError::InvalidInvitation(
                "the link has no host".into(),
            ));
        }
        return Ok(Source::Fetch(text.to_string()));
    }
    Err(WalletError::InvalidInvitation(format!(
        "a {scheme}: link without an _oob invitation"
    )))
}

fn parse_message(json: &[u8]) -> Result<Message, WalletError> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| WalletError::InvalidInvitation(format!("it is not JSON: {e}")))?;
    check(
        serde_json::from_value(value).map_err(|e| {
            WalletError::InvalidInvitation(format!("it is not a DIDComm message: {e}"))
        })?,
    )
}

/// Checks an invitation: its shape ([`out_of_band::parse_invitation`]: OOB 2.0, from a DID,
/// speaking DIDComm v2) and that it has not expired.
pub(crate) fn check(message: Message) -> Result<Message, WalletError> {
    parse(&message)?;
    Ok(message)
}

/// The invitation `message` holds, checked as [`check`] does.
pub(crate) fn parse(message: &Message) -> Result<Invitation, WalletError> {
    let invitation = out_of_band::parse_invitation(message).map_err(|error| match error {
        ProtocolError::WrongType { type_, .. } => WalletError::InvalidInvitation(format!(
            "{type_} is not an Out-of-Band 2.0 invitation (a DIDComm v1 invitation cannot be used)"
        )),
        ProtocolError::Invalid { problem, .. } => WalletError::InvalidInvitation(problem),
        missing @ ProtocolError::Missing { .. } => {
            WalletError::InvalidInvitation(missing.to_string())
        }
    })?;
    if let Some(at) = invitation.expires_time {
        if at <= lanyard_protocol::didcomm::now() {
            return Err(WalletError::InvitationExpired(
                lanyard_protocol::credentials::time::format_rfc3339(at),
            ));
        }
    }
    Ok(invitation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lanyard_protocol::encoding::b64u_encode;
    use serde_json::json;

    fn invitation() -> Value {
        json!({ "type": out_of_band::INVITATION, "id": "inv-1", "from": "did:example:acme", "body": { "accept": ["didcomm/v2"] } })
    }

    #[test]
    fn every_form_reads_to_the_same_invitation() {
        let encoded = b64u_encode(invitation().to_string());
        for text in [
            invitation().to_string(),
            format!("https://acme.example/join?_oob={encoded}"),
            format!("lanyard://oob?_oob={encoded}"),
            format!("didcomm://?_oob={encoded}"),
            format!("  https://acme.example/join?x=1&_oob={encoded}#frag  "),
        ] {
            match read(&text) {
                Ok(Source::Inline(message)) => assert_eq!(message.id, "inv-1", "{text}"),
                _ => panic!("{text} did not read"),
            }
        }
        assert!(matches!(
            read("https://agent.example/i/abcDEF123456"),
            Ok(Source::Fetch(_))
        ));
    }

    #[test]
    fn bad_invitations_say_what_is_wrong() {
        let error = |text: &str| match read(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{text} was accepted"),
        };
        assert!(error("hello").contains("neither a link"));
        assert!(error("lanyard://oob?_oob=!!!").contains("base64url"));
        assert!(error("mailto:x@example.com").contains("without an _oob"));
        let mut v1 = invitation();
        v1["type"] = json!("https://didcomm.org/out-of-band/1.1/invitation");
        assert!(error(&v1.to_string()).contains("not an Out-of-Band 2.0"));
        let mut expired = invitation();
        expired["expires_time"] = json!(1);
        assert!(error(&expired.to_string()).contains("expired"));
        let mut v1_only = invitation();
        v1_only["body"]["accept"] = json!(["didcomm/aip2;env=rfc19"]);
        assert!(error(&v1_only.to_string()).contains("DIDComm v2"));
        let mut anonymous = invitation();
        anonymous.as_object_mut().unwrap().remove("from");
        assert!(error(&anonymous.to_string()).contains("who it is from"));
    }
}
