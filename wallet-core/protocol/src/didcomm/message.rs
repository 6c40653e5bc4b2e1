//! The DIDComm v2 plaintext message (DIDComm Messaging v2.1 §"Plaintext Message Structure")
//! and its attachments (§"Attachments"), with serde. Unknown headers are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// When it was written, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
