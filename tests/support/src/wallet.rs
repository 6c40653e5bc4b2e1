//! A wallet in a fresh folder and a recorder of its events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanyard_protocol::store::{Argon2Params, Unlock};
use wallet_core::{Wallet, WalletEvent, WalletListener};

/// Records a wallet's events (the listener a test sets on it).
#[derive(Default)]
pub struct Events(pub Mutex<Vec<WalletEvent>>);

impl WalletListener for Events {
    fn on_event(&self, event: WalletEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    /// Every event recorded so far, in order.
    pub fn all(&self) -> Vec<WalletEvent> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s for an event `matches` accepts.
    pub async fn wait_for(
        &self,
        what: &str,
        matches: impl Fn(&WalletEvent) -> bool,
    ) -> WalletEvent {
        for _ in 0..200 {
            if let Some(event) = self.all().into_iter().find(|e| matches(e)) {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} event within 10 s: {:?}", self.all());
    }
}

/// A wallet in a fresh folder (fast Argon2 parameters: tests only) allowed to reach loopback,
/// with an event recorder; the folder goes when the returned `TempDir` is dropped.
pub fn wallet() -> (Arc<Wallet>, Arc<Events>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // The agent runs on loopback: the development allowance.
    let wallet = Wallet::builder(
        &dir.path().join("wallet"),
        Unlock::Passphrase {
            passphrase: zeroize::Zeroizing::new("journey passphrase".to_string()),
            params: Argon2Params::insecure_for_tests(),
        },
    )
    .network(lanyard_protocol::net::NetPolicy::loopback())
    .open()
    .unwrap();
    let events = Arc::new(Events::default());
    wallet.set_listener(Some(events.clone()));
    (Arc::new(wallet), events, dir)
}
