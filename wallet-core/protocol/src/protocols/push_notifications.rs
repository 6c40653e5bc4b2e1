//! Push notification registration: how a wallet tells its mediator where to wake it when a
//! message waits and the phone has no live socket.
//!
//! Three protocols with one message shape each, one per wake service:
//! - Aries RFC 0734 `https://didcomm.org/push-notifications-fcm/1.0` (Firebase Cloud
//!   Messaging): `set-device-info` with `device_token` (the FCM registration token) and
//!   `device_platform` (e.g. `android`);
//! - Aries RFC 0699 `https://didcomm.org/push-notifications-apns/1.0` (Apple Push
//!   Notification service): `set-device-info` with `device_token` (the APNs device token, hex);
//! - Lanyard's `https://lanyard.dev/protocols/push-notifications-webhook/1.0`, the same
//!   messages for a plain HTTPS webhook: `set-device-info` with `url` (an `https` URL the
//!   mediator's gateway POSTs a fixed, content-free body to).
//!
//! The RFCs are written for DIDComm v1 (`@type`, `@id`, `~thread`); in DIDComm v2 the type and
//! id are the plaintext message's `type` and `id`, the fields go in its `body`, and a reply is
//! threaded by `thid`. Setting every value to `null` (or the empty string) removes the
//! registration; setting one FCM value and not the other is refused (the RFCs'
//! `missing-value`). The RFCs adopt Aries RFC 0015's `ack` to confirm a `set-device-info`;
//! DIDComm v2 has no such message, so the mediator confirms with a `device-info` in the
//! request's thread. Lanyard's mediator keeps no device token (only an opaque handle its push
//! gateway gave), so its `device-info` carries `device_token: null` and says whether a device
//! is registered in `registered` (a Lanyard extension field).
//!
//! A push a mediator sends carries no message content and no sender: only that something
//! waits; the woken wallet picks up from its mediator.

use serde_json::{json, Value};

use super::{Body, ProtocolError};
use crate::didcomm::Message;

/// Aries RFC 0734, Push Notifications fcm 1.0.
pub const FCM_PIURI: &str = "https://didcomm.org/push-notifications-fcm/1.0";
/// Sets (or, with null values, removes) the FCM registration token.
pub const FCM_SET_DEVICE_INFO: &str =
    "https://didcomm.org/push-notifications-fcm/1.0/set-device-info";
/// Asks what FCM registration the notification sender holds.
pub const FCM_GET_DEVICE_INFO: &str =
    "https://didcomm.org/push-notifications-fcm/1.0/get-device-info";
/// What FCM registration the notification sender holds.
pub const FCM_DEVICE_INFO: &str = "https://didcomm.org/push-notifications-fcm/1.0/device-info";

/// Aries RFC 0699, Push Notifications apns 1.0.
pub const APNS_PIURI: &str = "https://didcomm.org/push-notifications-apns/1.0";
/// Sets (or, with a null token, removes) the APNs device token.
pub const APNS_SET_DEVICE_INFO: &str =
    "https://didcomm.org/push-notifications-apns/1.0/set-device-info";
/// Asks what APNs registration the notification sender holds.
pub const APNS_GET_DEVICE_INFO: &str =
    "https://didcomm.org/push-notifications-apns/1.0/get-device-info";
/// What APNs registration the notification sender holds.
pub const APNS_DEVICE_INFO: &str = "https://didcomm.org/push-notifications-apns/1.0/device-info";

/// Lanyard's webhook wake-up protocol (the RFCs' messages with a `url`).
pub const WEBHOOK_PIURI: &str = "https://lanyard.dev/protocols/push-notifications-webhook/1.0";
/// Sets (or, with a null `url`, removes) the webhook.
pub const WEBHOOK_SET_DEVICE_INFO: &str =
    "https://lanyard.dev/protocols/push-notifications-webhook/1.0/set-device-info";
/// Asks what webhook registration the notification sender holds.
pub const WEBHOOK_GET_DEVICE_INFO: &str =
    "https://lanyard.dev/protocols/push-notifications-webhook/1.0/get-device-info";
/// What webhook registration the notification sender holds.
pub const WEBHOOK_DEVICE_INFO: &str =
    "https://lanyard.dev/protocols/push-notifications-webhook/1.0/device-info";

/// Longest device token (or webhook URL) accepted, in bytes. APNs tokens are 64 hex digits
/// today (Apple allows them to grow), FCM tokens about 160 characters.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest `device_platform` accepted, in bytes.
pub const MAX_PLATFORM_LEN: usize = 64;

/// The service that wakes the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushService {
    /// Apple Push Notification service (RFC 0699).
    Apns,
    /// Firebase Cloud Messaging (RFC 0734).
    Fcm,
    /// A plain HTTPS webhook (Lanyard's protocol).
    Webhook,
}

impl PushService {
    /// Every service, in the order they are disclosed.
    pub const ALL: [PushService; 3] = [PushService::Apns, PushService::Fcm, PushService::Webhook];

    /// The protocol's URI.
    pub fn piuri(self) -> &'static str {
        match self {
            PushService::Apns => APNS_PIURI,
            PushService::Fcm => FCM_PIURI,
            PushService::Webhook => WEBHOOK_PIURI,
        }
    }

    fn types(self) -> [&'static str; 3] {
        match self {
            PushService::Apns => [APNS_SET_DEVICE_INFO, APNS_GET_DEVICE_INFO, APNS_DEVICE_INFO],
            PushService::Fcm => [FCM_SET_DEVICE_INFO, FCM_GET_DEVICE_INFO, FCM_DEVICE_INFO],
            PushService::Webhook => [
                WEBHOOK_SET_DEVICE_INFO,
                WEBHOOK_GET_DEVICE_INFO,
                WEBHOOK_DEVICE_INFO,
            ],
        }
    }

    /// The field that carries the token (`url` for the webhook).
    fn token_field(self) -> &'static str {
        match self {
            PushService::Webhook => "url",
            PushService::Apns | PushService::Fcm => "device_token",
        }
    }

    /// Its lower-case name: `apns`, `fcm` or `webhook`.
    pub fn name(self) -> &'static str {
        match self {
            PushService::Apns => "apns",
            PushService::Fcm => "fcm",
            PushService::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for PushService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A service name that is none of `apns`, `fcm`, `webhook` (the text given).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a push service: say apns, fcm or webhook")]
pub struct UnknownPushService(pub String);

impl std::str::FromStr for PushService {
    type Err = UnknownPushService;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "apns" => Ok(PushService::Apns),
            "fcm" => Ok(PushService::Fcm),
            "webhook" => Ok(PushService::Webhook),
            _ => Err(UnknownPushService(text.to_string())),
        }
    }
}

/// Which of the three messages a type is, and of which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMessageKind {
    /// `set-device-info`.
    SetDeviceInfo,
    /// `get-device-info`.
    GetDeviceInfo,
    /// `device-info`.
    DeviceInfo,
}

/// The service and message a type URI names, when it is one of these protocols'.
pub fn classify(type_: &str) -> Option<(PushService, PushMessageKind)> {
    PushService::ALL.into_iter().find_map(|service| {
        let [set, get, info] = service.types();
        let kind = if type_ == set {
            PushMessageKind::SetDeviceInfo
        } else if type_ == get {
            PushMessageKind::GetDeviceInfo
        } else if type_ == info {
            PushMessageKind::DeviceInfo
        } else {
            return None;
        };
        Some((service, kind))
    })
}

/// A `set-device-info`: where to wake this wallet, or (`token: None`) to stop.
#[derive(Clone, PartialEq, Eq)]
pub struct SetDeviceInfo {
    /// The wake service.
    pub service: PushService,
    /// The APNs device token, FCM registration token or webhook URL; `None` removes the
    /// registration.
    pub token: Option<String>,
    /// FCM's `device_platform` (e.g. `android`); ignored for the other services.
    pub device_platform: Option<String>,
}

impl std::fmt::Debug for SetDeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetDeviceInfo")
            .field("service", &self.service)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("device_platform", &self.device_platform)
            .finish()
    }
}

/// The `set-device-info` message of `set`.
pub fn set_device_info_message(set: &SetDeviceInfo) -> Message {
    let [type_, _, _] = set.service.types();
    let mut body = json!({ set.service.token_field(): set.token });
    if set.service == PushService::Fcm {
        body["device_platform"] = json!(if set.token.is_some() {
            set.device_platform.as_deref()
        } else {
            None
        });
    }
    Message::new(type_, body)
}

/// Reads a `set-device-info` of any of the three services: the token field (`device_token`,
/// or `url` for the webhook) a string of at most [`MAX_TOKEN_LEN`] bytes, or null or empty to
/// remove; for FCM `device_platform` (at most [`MAX_PLATFORM_LEN`] bytes) set exactly when
/// the token is.
pub fn parse_set_device_info(message: &Message) -> Result<SetDeviceInfo, ProtocolError> {
    let (service, kind) = classify(&message.type_).ok_or_else(|| ProtocolError::WrongType {
        type_: message.type_.clone(),
        expected: "set-device-info",
    })?;
    if kind != PushMessageKind::SetDeviceInfo {
        return Err(ProtocolError::WrongType {
            type_: message.type_.clone(),
            expected: "set-device-info",
        });
    }
    let body = Body::of(message, &message.type_, "set-device-info")?;
    let field = service.token_field();
    let token = body.opt_str(field)?.filter(|token| !token.is_empty());
    if let Some(token) = token {
        if token.len() > MAX_TOKEN_LEN {
            return Err(body.invalid(format!(
                "{field} is {} bytes, over the limit of {MAX_TOKEN_LEN}",
                token.len()
            )));
        }
        if token.chars().any(char::is_control) {
            return Err(body.invalid(format!("{field} has control characters")));
        }
    }
    let device_platform = if service == PushService::Fcm {
        let platform = body
            .opt_str("device_platform")?
            .filter(|platform| !platform.is_empty());
        if let Some(platform) = platform {
            if platform.len() > MAX_PLATFORM_LEN || platform.chars().any(char::is_control) {
                return Err(body.invalid(format!(
                    "device_platform is not a short name (at most {MAX_PLATFORM_LEN} bytes)"
                )));
            }
        }
        match (token, platform) {
            (Some(_), None) => {
                return Err(body.invalid(
                    "missing-value: device_platform is null but device_token is not \
                     (set both, or both null to remove the device)",
                ))
            }
            (None, Some(_)) => {
                return Err(body.invalid(
                    "missing-value: device_token is null but device_platform is not \
                     (set both, or both null to remove the device)",
                ))
            }
            _ => platform.map(str::to_string),
        }
    } else {
        None
    };
    Ok(SetDeviceInfo {
        service,
        token: token.map(str::to_string),
        device_platform,
    })
}

/// A `get-device-info` (its body is empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetDeviceInfo {
    /// The service asked about.
    pub service: PushService,
}

/// The `get-device-info` message of `get`.
pub fn get_device_info_message(get: &GetDeviceInfo) -> Message {
    let [_, type_, _] = get.service.types();
    Message::new(type_, json!({}))
}

/// Reads a `get-device-info` of any of the three services.
pub fn parse_get_device_info(message: &Message) -> Result<GetDeviceInfo, ProtocolError> {
    match classify(&message.type_) {
        Some((service, PushMessageKind::GetDeviceInfo)) => {
            Body::of(message, &message.type_, "get-device-info")?;
            Ok(GetDeviceInfo { service })
        }
        _ => Err(ProtocolError::WrongType {
            type_: message.type_.clone(),
            expected: "get-device-info",
        }),
    }
}

/// A `device-info`, as Lanyard's mediator sends it: whether a device is registered for this
/// service (the token itself is never sent back: the mediator does not keep it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The service it answers for.
    pub service: PushService,
    /// Whether the mediator holds a registration for the asking client.
    pub registered: bool,
}

/// The `device-info` message of `info`, unthreaded (thread it on the request with
/// [`Message::in_reply_to`]): the token field null, `registered` as held.
pub fn device_info_message(info: &DeviceInfo) -> Message {
    let [_, _, type_] = info.service.types();
    let mut body = json!({
        info.service.token_field(): Value::Null,
        "registered": info.registered,
    });
    if info.service == PushService::Fcm {
        body["device_platform"] = Value::Null;
    }
    Message::new(type_, body)
}

/// Reads a `device-info` of any of the three services: it answers a thread and says
/// `registered` (true or false).
pub fn parse_device_info(message: &Message) -> Result<DeviceInfo, ProtocolError> {
    let Some((service, PushMessageKind::DeviceInfo)) = classify(&message.type_) else {
        return Err(ProtocolError::WrongType {
            type_: message.type_.clone(),
            expected: "device-info",
        });
    };
    let body = Body::of(message, &message.type_, "device-info")?;
    super::thid_of(message, "device-info")?;
    let registered = body
        .opt_bool("registered")?
        .ok_or_else(|| body.invalid("registered is missing (Lanyard's mediator says it)"))?;
    Ok(DeviceInfo {
        service,
        registered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(message: &Message) -> Message {
        serde_json::from_str(&message.to_json()).unwrap()
    }

    #[test]
    fn set_device_info_round_trips_for_each_service_in_the_rfcs_shapes() {
        let fcm = SetDeviceInfo {
            service: PushService::Fcm,
            token: Some("fcm-token".into()),
            device_platform: Some("android".into()),
        };
        let message = set_device_info_message(&fcm);
        assert_eq!(message.type_, FCM_SET_DEVICE_INFO);
        assert_eq!(
            message.body,
            json!({ "device_token": "fcm-token", "device_platform": "android" })
        );
        assert_eq!(parse_set_device_info(&wire(&message)).unwrap(), fcm);

        let apns = SetDeviceInfo {
            service: PushService::Apns,
            token: Some("ab".repeat(32)),
            device_platform: None,
        };
        let message = set_device_info_message(&apns);
        assert_eq!(message.type_, APNS_SET_DEVICE_INFO);
        assert_eq!(message.body, json!({ "device_token": "ab".repeat(32) }));
        assert_eq!(parse_set_device_info(&wire(&message)).unwrap(), apns);

        let webhook = SetDeviceInfo {
            service: PushService::Webhook,
            token: Some("https://phone.example/wake".into()),
            device_platform: None,
        };
        let message = set_device_info_message(&webhook);
        assert_eq!(message.type_, WEBHOOK_SET_DEVICE_INFO);
        assert_eq!(message.body, json!({ "url": "https://phone.example/wake" }));
        assert_eq!(parse_set_device_info(&wire(&message)).unwrap(), webhook);
    }

    #[test]
    fn null_or_empty_values_remove_the_device() {
        let remove = SetDeviceInfo {
            service: PushService::Fcm,
            token: None,
            device_platform: Some("android".into()),
        };
        let message = set_device_info_message(&remove);
        assert_eq!(
            message.body,
            json!({ "device_token": null, "device_platform": null })
        );
        let read = parse_set_device_info(&message).unwrap();
        assert_eq!(read.token, None);
        assert_eq!(read.device_platform, None);
        let empty = Message::new(APNS_SET_DEVICE_INFO, json!({ "device_token": "" }));
        assert_eq!(parse_set_device_info(&empty).unwrap().token, None);
        let absent = Message::new(WEBHOOK_SET_DEVICE_INFO, json!({}));
        assert_eq!(parse_set_device_info(&absent).unwrap().token, None);
    }

    #[test]
    fn malformed_set_device_info_is_refused_naming_the_field() {
        let refused = |type_: &str, body: Value| {
            parse_set_device_info(&Message::new(type_, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(FCM_SET_DEVICE_INFO, json!({ "device_token": "t" })),
            "set-device-info: missing-value: device_platform is null but device_token is not \
             (set both, or both null to remove the device)"
        );
        assert_eq!(
            refused(FCM_SET_DEVICE_INFO, json!({ "device_platform": "ios" })),
            "set-device-info: missing-value: device_token is null but device_platform is not \
             (set both, or both null to remove the device)"
        );
        assert_eq!(
            refused(APNS_SET_DEVICE_INFO, json!({ "device_token": 7 })),
            "set-device-info: device_token is not a string"
        );
        assert_eq!(
            refused(WEBHOOK_SET_DEVICE_INFO, json!({ "url": ["https://x"] })),
            "set-device-info: url is not a string"
        );
        assert_eq!(
            refused(
                APNS_SET_DEVICE_INFO,
                json!({ "device_token": "a".repeat(MAX_TOKEN_LEN + 1) })
            ),
            format!(
                "set-device-info: device_token is {} bytes, over the limit of {MAX_TOKEN_LEN}",
                MAX_TOKEN_LEN + 1
            )
        );
        assert_eq!(
            refused(
                WEBHOOK_SET_DEVICE_INFO,
                json!({ "url": "https://x/\r\nHost: y" })
            ),
            "set-device-info: url has control characters"
        );
        assert_eq!(
            refused(APNS_SET_DEVICE_INFO, json!("token")),
            "set-device-info: its body is not a JSON object"
        );
        assert!(matches!(
            parse_set_device_info(&Message::new(APNS_GET_DEVICE_INFO, json!({}))),
            Err(ProtocolError::WrongType {
                expected: "set-device-info",
                ..
            })
        ));
    }

    #[test]
    fn device_info_answers_in_the_thread_without_a_token() {
        for service in PushService::ALL {
            let get = get_device_info_message(&GetDeviceInfo { service });
            assert_eq!(
                parse_get_device_info(&wire(&get)).unwrap(),
                GetDeviceInfo { service }
            );
            let info = DeviceInfo {
                service,
                registered: true,
            };
            let reply = device_info_message(&info).in_reply_to(&get);
            assert_eq!(reply.body[service.token_field()], Value::Null);
            assert_eq!(parse_device_info(&wire(&reply)).unwrap(), info);
            assert_eq!(
                classify(&reply.type_),
                Some((service, PushMessageKind::DeviceInfo))
            );
        }
        let unthreaded = device_info_message(&DeviceInfo {
            service: PushService::Fcm,
            registered: false,
        });
        assert_eq!(
            parse_device_info(&unthreaded).unwrap_err().to_string(),
            "device-info has no thid (the thread it answers)"
        );
        let mut silent = unthreaded.thid("t");
        silent.body = json!({ "device_token": null });
        assert_eq!(
            parse_device_info(&silent).unwrap_err().to_string(),
            "device-info: registered is missing (Lanyard's mediator says it)"
        );
        assert_eq!(classify("https://didcomm.org/trust-ping/2.0/ping"), None);
    }

    #[test]
    fn services_read_by_name_and_tokens_stay_out_of_debug() {
        assert_eq!("FCM".parse::<PushService>().unwrap(), PushService::Fcm);
        assert_eq!(
            "sms".parse::<PushService>().unwrap_err().to_string(),
            "\"sms\" is not a push service: say apns, fcm or webhook"
        );
        let set = SetDeviceInfo {
            service: PushService::Apns,
            token: Some("secret-token".into()),
            device_platform: None,
        };
        assert!(!format!("{set:?}").contains("secret-token"));
    }
}
