//! Push wake-up: the wallet tells its mediator where to wake it (an APNs device token, an FCM
//! registration token or an HTTPS webhook) with the `set-device-info` of
//! [`lanyard_protocol::protocols::push_notifications`], and takes it back with the same
//! message and no token. A woken app calls [`Wallet::sync`]: the push itself carries nothing.
//! The wallet remembers which service it registered (not the token: the platform gives the
//! app a token whenever it asks), so that [`Wallet::unregister_push`] removes the right one.

use lanyard_protocol::didcomm::Message;
pub use lanyard_protocol::protocols::push_notifications::PushService;
use lanyard_protocol::protocols::push_notifications::{self as push, DeviceInfo, SetDeviceInfo};

use super::{Mediation, Wallet, WalletError, META};

/// Where the registered service is remembered.
const PUSH_KEY: &str = "push";

/// What FCM's `device_platform` says for a token this wallet registers (the Android app is
/// the one FCM client; the iOS app uses APNs).
const FCM_PLATFORM: &str = "android";

impl Wallet {
    /// Registers this device with the mediator for wake-ups through `service`: `token` is the
    /// APNs device token (hex), the FCM registration token, or an `https` webhook URL. A new
    /// token (the platform rotates them) replaces the old one; registering with another
    /// service replaces the registration too. Refused before anything is sent when the wallet
    /// has no mediator yet or `token` is empty; refused by the mediator (in its words) when it
    /// has no push gateway or the gateway does not take the token.
    pub async fn register_push(
        &self,
        service: PushService,
        token: &str,
    ) -> Result<(), WalletError> {
        if token.trim().is_empty() {
            return Err(WalletError::Refused(
                "push registration".into(),
                format!("the {service} token is empty (use unregister_push to stop wake-ups)"),
            ));
        }
        let mediation = self.push_mediation()?;
        let set = SetDeviceInfo {
            service,
            token: Some(token.to_string()),
            device_platform: (service == PushService::Fcm).then(|| FCM_PLATFORM.to_string()),
        };
        let info = self.set_device_info(&mediation, &set).await?;
        if !info.registered {
            return Err(WalletError::Refused(
                mediation.agent,
                "the mediator did not keep the registration".into(),
            ));
        }
        self.store.put_json(META, PUSH_KEY, &service.name())?;
        Ok(())
    }

    /// Removes this device's wake-up registration from the mediator; nothing to do (`Ok`) when
    /// none is registered.
    pub async fn unregister_push(&self) -> Result<(), WalletError> {
        let Some(service) = self.push_service()? else {
            return Ok(());
        };
        let mediation = self.push_mediation()?;
        let set = SetDeviceInfo {
            service,
            token: None,
            device_platform: None,
        };
        self.set_device_info(&mediation, &set).await?;
        self.store.delete(META, PUSH_KEY)?;
        Ok(())
    }

    /// The service this wallet registered for wake-ups, if any.
    pub fn push_service(&self) -> Result<Option<PushService>, WalletError> {
        let stored: Option<String> = self.store.get_json(META, PUSH_KEY)?;
        Ok(stored.and_then(|name| name.parse().ok()))
    }

    fn push_mediation(&self) -> Result<Mediation, WalletError> {
        self.mediation()?.ok_or_else(|| {
            WalletError::Refused(
                "push registration".into(),
                "this wallet has no mediator yet: accept an invitation first".into(),
            )
        })
    }

    /// Sends `set` and reads the mediator's `device-info` (or its problem report, as
    /// [`WalletError::Refused`]).
    async fn set_device_info(
        &self,
        mediation: &Mediation,
        set: &SetDeviceInfo,
    ) -> Result<DeviceInfo, WalletError> {
        let answer: Message = self
            .ask_mediator(mediation, push::set_device_info_message(set))
            .await?;
        push::parse_device_info(&answer)
            .map_err(|error| WalletError::Refused(mediation.agent.clone(), error.to_string()))
    }
}
