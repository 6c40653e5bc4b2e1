//! The DIDComm v2 plaintext message (DIDComm Messaging v2.1 §"Plaintext Message Structure")
//! and its attachments (§"Attachments"), with serde. Unknown headers are kept in `extra`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;

use crate::encoding::{b64u_decode, b64u_encode};

/// `typ` of a plaintext message.
pub const PLAINTEXT_TYP: &str = "application/didcomm-plain+json";

/// A plaintext DIDComm message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique per sender; a reply's `thid` names the message that started its thread.
    pub id: String,
    /// The media type, [`PLAINTEXT_TYP`] (absent in the compact OOB form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The message type URI (`<PIURI>/<name>`), which says how to read the body.
    #[serde(rename = "type")]
    pub type_: String,
    /// The sender's DID; must be the authcrypt sender or signer when the message is authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The recipients' DIDs; must name the DID it was encrypted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// The thread it belongs to (absent when it starts one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thid: Option<String>,
    /// The parent thread (e.g. the invitation a first message answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pthid: Option<String>,
    /// When it was written, seconds since the epoch. A value that is not a non-negative
    /// integer (Veramo writes an ISO 8601 string; others a float) is read as absent and
    /// logged: the header is optional and informative, so it is no reason to refuse.
    #[serde(
        default,
        deserialize_with = "lenient_created_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_time: Option<u64>,
    /// After when it must not be acted on, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_time: Option<u64>,
    /// The protocol's content (a JSON object).
    #[serde(default)]
    pub body: Value,
    /// Attached data (credentials, envelopes, embedded messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Headers this model does not name (`please_ack`, `from_prior`, extensions...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A new message with a random UUID id, the plaintext `typ`, the current `created_time`
    /// and `body`.
    pub fn new(type_: impl Into<String>, body: Value) -> Message {
        Message {
            id: uuid::Uuid::new_v4().to_string(),
            typ: Some(PLAINTEXT_TYP.to_string()),
            type_: type_.into(),
            from: None,
            to: None,
            thid: None,
            pthid: None,
            created_time: Some(now()),
            expires_time: None,
            body,
            attachments: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Sets `from`.
    pub fn from(mut self, did: impl Into<String>) -> Message {
        self.from = Some(did.into());
        self
    }

    /// Sets `to`.
    pub fn to(mut self, dids: impl IntoIterator<Item = impl Into<String>>) -> Message {
        self.to = Some(dids.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `thid`.
    pub fn thid(mut self, thid: impl Into<String>) -> Message {
        self.thid = Some(thid.into());
        self
    }

    /// Sets `pthid`.
    pub fn pthid(mut self, pthid: impl Into<String>) -> Message {
        self.pthid = Some(pthid.into());
        self
    }

    /// Sets `expires_time` (seconds since the epoch).
    pub fn expires_time(mut self, at: u64) -> Message {
        self.expires_time = Some(at);
        self
    }

    /// Adds an attachment.
    pub fn attachment(mut self, attachment: Attachment) -> Message {
        self.attachments.push(attachment);
        self
    }

    /// Threads this message as the reply to `request`: its `thid` is the request's thread
    /// ([`Message::thread_id`]) and its `pthid` the request's parent thread, if it has one.
    pub fn in_reply_to(mut self, request: &Message) -> Message {
        self.thid = Some(request.thread_id().to_string());
        if let Some(pthid) = &request.pthid {
            self.pthid = Some(pthid.clone());
        }
        self
    }

    /// The thread this message belongs to: `thid`, or its own id when it starts a thread.
    pub fn thread_id(&self) -> &str {
        self.thid.as_deref().unwrap_or(&self.id)
    }

    /// Serialises to compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Message always serialises")
    }
}

/// A message attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its id within the message (a delivery's queue id, a credential's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What it is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A file name hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The media type of the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The format identifier a protocol names (e.g. `aries/ld-proof-vc@v1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// When the content last changed, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastmod_time: Option<u64>,
    /// The size of the content in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_count: Option<u64>,
    /// The content.
    pub data: AttachmentData,
}

impl Attachment {
    /// An envelope (a packed DIDComm message) as an attachment with id `id` and media type
    /// `application/didcomm-encrypted+json`: inline as `data.json`, the form Veramo, Credo,
    /// Identus, affinidi and didcomm-rust based clients all read (Veramo reads no other);
    /// as `data.base64` (base64url) only when the text is not a JSON object.
    pub fn envelope(id: impl Into<String>, envelope: &str) -> Attachment {
        let mut attachment = Attachment::json(Value::Null);
        attachment.id = Some(id.into());
        attachment.media_type = Some(super::ENCRYPTED_TYP.to_string());
        attachment.data = match serde_json::from_str::<Value>(envelope) {
            Ok(json @ Value::Object(_)) => AttachmentData {
                json: Some(json),
                ..AttachmentData::default()
            },
            _ => AttachmentData {
                base64: Some(b64u_encode(envelope)),
                ..AttachmentData::default()
            },
        };
        attachment
    }

    /// An attachment carrying inline JSON.
    pub fn json(value: Value) -> Attachment {
        Attachment {
            id: Some(uuid::Uuid::new_v4().to_string()),
            description: None,
            filename: None,
            media_type: Some("application/json".to_string()),
            format: None,
            lastmod_time: None,
            byte_count: None,
            data: AttachmentData {
                json: Some(value),
                ..AttachmentData::default()
            },
        }
    }
}

/// The `data` of an attachment: inline JSON, base64 or links, optionally signed (`jws`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachmentData {
    /// A detached JWS over the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws: Option<Value>,
    /// A multihash of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Where the content can be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// The content, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// The content, as inline JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

impl AttachmentData {
    /// The content as text, in either inline form: `base64` decoded as UTF-8, else `json`
    /// serialised compactly. `base64` is read as base64url (what the spec says) or, failing
    /// that, standard base64 (what Credo's Pickup 4.0 writes), with or without padding.
    /// `None` when neither is there, or `base64` is neither encoding of UTF-8 text.
    pub fn text(&self) -> Option<String> {
        if let Some(base64) = &self.base64 {
            let unpadded = base64.trim_end_matches('=');
            let bytes = b64u_decode(unpadded)
                .or_else(|_| STANDARD_NO_PAD.decode(unpadded))
                .ok()?;
            return String::from_utf8(bytes).ok();
        }
        self.json.as_ref().map(Value::to_string)
    }
}

/// `created_time` as DIDComm v2.1 writes it (an integer), anything else read as absent.
fn lenient_created_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(match value {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
        Some(other) => {
            let kind = match other {
                Value::Number(_) => "a non-integer or negative number",
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            // The kind only: the value is a stranger's and may be large.
            tracing::info!("ignoring a created_time that is {kind}, not seconds since the epoch");
            None
        }
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(created_time: Value) -> Message {
        serde_json::from_value(json!({
            "id": "m-1",
            "type": "https://didcomm.org/trust-ping/2.0/ping",
            "created_time": created_time,
            "body": {}
        }))
        .expect("a message with any created_time is read")
    }

    #[test]
    fn an_integer_created_time_is_kept() {
        assert_eq!(read(json!(1_796_144_691)).created_time, Some(1_796_144_691));
        assert_eq!(read(json!(0)).created_time, Some(0));
    }

    #[test]
    fn a_non_integer_created_time_is_ignored_not_refused() {
        // Veramo 7's builders write an ISO 8601 string; others write floats.
        for value in [
            json!("2026-12-01T17:04:45.081Z"),
            json!(1_796_144_691.5),
            json!(-5),
            json!(true),
            json!([1]),
            json!({"at": 1}),
            Value::Null,
        ] {
            let message = read(value.clone());
            assert_eq!(message.created_time, None, "{value}");
            assert_eq!(message.id, "m-1");
            assert!(
                !message.extra.contains_key("created_time"),
                "{value} is not kept as an unknown header"
            );
            assert!(!message.to_json().contains("created_time"), "{value}");
        }
        let absent: Message = serde_json::from_value(json!({
            "id": "m-2", "type": "t", "body": {}
        }))
        .unwrap();
        assert_eq!(absent.created_time, None);
    }

    #[test]
    fn expires_time_stays_strict() {
        // Ignoring an expiry would act on a message its sender meant to lapse.
        let error = serde_json::from_value::<Message>(json!({
            "id": "m-3", "type": "t", "body": {}, "expires_time": "tomorrow"
        }))
        .unwrap_err();
        assert!(
            error.to_string().contains("invalid type: string"),
            "{error}"
        );
    }

    #[test]
    fn an_envelope_is_attached_as_inline_json_and_read_back_in_either_form() {
        let envelope = r#"{"ciphertext":"c","iv":"i","protected":"p","recipients":[],"tag":"t"}"#;
        let attachment = Attachment::envelope("q-1", envelope);
        assert_eq!(attachment.id.as_deref(), Some("q-1"));
        assert_eq!(
            attachment.media_type.as_deref(),
            Some("application/didcomm-encrypted+json")
        );
        assert_eq!(
            serde_json::to_value(&attachment.data).unwrap(),
            json!({ "json": serde_json::from_str::<Value>(envelope).unwrap() })
        );
        let text = attachment.data.text().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            serde_json::from_str::<Value>(envelope).unwrap()
        );

        // What older Lanyard mediators and Identus's send (base64url, padded or not), and
        // Credo's Pickup 4.0 (standard base64 with padding; this text encodes to `+` and `/`).
        let standard = base64::engine::general_purpose::STANDARD.encode("{\"a\":\"~~~???\"}");
        assert!(
            standard.contains('+') && standard.contains('/'),
            "{standard}"
        );
        for base64 in [
            b64u_encode(envelope),
            format!("{}=", b64u_encode("{}x")),
            standard,
        ] {
            let data = AttachmentData {
                base64: Some(base64.clone()),
                ..AttachmentData::default()
            };
            let text = data.text().unwrap_or_else(|| panic!("{base64} is read"));
            assert_eq!(
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(&text),
                base64
                    .trim_end_matches('=')
                    .replace('-', "+")
                    .replace('_', "/"),
            );
        }
        let not_utf8 = AttachmentData {
            base64: Some(b64u_encode([0xff, 0xfe])),
            ..AttachmentData::default()
        };
        assert_eq!(not_utf8.text(), None);
        let not_base64 = AttachmentData {
            base64: Some("!!".into()),
            ..AttachmentData::default()
        };
        assert_eq!(not_base64.text(), None);
        assert_eq!(AttachmentData::default().text(), None);
    }

    #[test]
    fn text_that_is_not_a_json_object_is_attached_as_base64url() {
        for envelope in ["eyJhbGciOi.compact.jws", "[1,2]", ""] {
            let attachment = Attachment::envelope("q-2", envelope);
            assert_eq!(attachment.data.json, None, "{envelope:?}");
            assert_eq!(
                attachment.data.base64.as_deref(),
                Some(b64u_encode(envelope).as_str())
            );
            assert_eq!(attachment.data.text().as_deref(), Some(envelope));
        }
    }
}
