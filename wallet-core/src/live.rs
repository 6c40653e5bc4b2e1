//! Live mode (Pickup `live-delivery-change`, in the version the wallet picks up in, over the
//! mediator's WebSocket): while the app is open, the mediator pushes messages as they arrive;
//! each is processed and acknowledged on the same socket, exactly as a sync would. A 4.0
//! mediator pushes only what arrives after live mode is on, so the wallet then asks for what
//! was already queued (`delivery-request` on the same socket, again while a batch comes back
//! full): live first, then the queue, so nothing arrives unseen in between.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Frame;

use super::{Mediation, SyncReport, Wallet, WalletError, WalletEvent};
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::protocols::pickup;

/// A running live session; [`Live::stop`] ends it.
pub struct Live {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    /// Closes the socket and waits for the session to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl Wallet {
    async fn packed_for_mediator(
        &self,
        mediation: &Mediation,
        message: Message,
    ) -> Result<String, WalletError> {
        let message = message
            .from(mediation.my_did.clone())
            .to([mediation.mediator_did.clone()]);
        Ok(self
            .didcomm
            .pack_authcrypt(
                &message,
                &mediation.my_did,
                &[&mediation.mediator_did],
                false,
            )
            .await?)
    }

    /// Opens the mediator's WebSocket and asks for live delivery; messages are processed as
    /// they arrive until [`Live::stop`].
    pub async fn start_live(self: &Arc<Self>) -> Result<Live, WalletError> {
        let mediation = self.mediation()?.ok_or_else(|| WalletError::WrongState {
            what: "wallet",
            id: "live mode".into(),
            why: "accept an invitation first, so the wallet has a mediator".into(),
        })?;
        let url = format!(
            "{}/ws",
            mediation
                .agent
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        // The TCP connection is opened by the hardened client (scheme, resolved addresses and
        // connect timeout under the same policy as every fetch); TLS and the WebSocket
        // handshake go over it.
        let stream = self.http.connect(&url).await.map_err(super::net_error)?;
        let (mut socket, _) = tokio_tungstenite::client_async_tls(url.as_str(), stream)
            .await
            .map_err(|e| WalletError::Unreachable(format!("{url} ({e})")))?;
        let on = self
            .packed_for_mediator(
                &mediation,
                pickup::live_delivery_change_message(
                    mediation.pickup,
                    &pickup::LiveDeliveryChange {
                        live_delivery: true,
                    },
                ),
            )
            .await?;
        socket
            .send(Frame::Text(on.into()))
            .await
            .map_err(|e| WalletError::Unreachable(format!("{url} ({e})")))?;
        // The delivery-request whose answer is awaited, while the queue is drained (4.0).
        let mut asking = None;
        if !mediation.pickup.live_pushes_queued() {
            let (id, request) = self.delivery_request(&mediation).await?;
            socket
                .send(Frame::Text(request.into()))
                .await
                .map_err(|e| WalletError::Unreachable(format!("{url} ({e})")))?;
            asking = Some(id);
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let wallet = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    _ = &mut stopped => break,
                    frame = socket.next() => frame,
                };
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text.to_string(),
                    Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => {
                        wallet.emit(WalletEvent::Problem {
                            message: "live mode ended: the mediator closed the connection".into(),
                        });
                        break;
                    }
                    Some(Ok(_)) => continue,
                };
                let mut out = Vec::new();
                match wallet.live_frame(&mediation, &text).await {
                    Ok(Some(answer)) => {
                        out.push(answer.ack);
                        // A full batch answering our request: more may wait.
                        if answer.full && asking.is_some() && answer.thid == asking {
                            match wallet.delivery_request(&mediation).await {
                                Ok((id, request)) => {
                                    out.push(request);
                                    asking = Some(id);
                                }
                                Err(error) => wallet.emit(WalletEvent::Problem {
                                    message: error.to_string(),
                                }),
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(error) => wallet.emit(WalletEvent::Problem {
                        message: error.to_string(),
                    }),
                }
                let mut sent = true;
                for frame in out {
                    sent = socket.send(Frame::Text(frame.into())).await.is_ok();
                    if !sent {
                        break;
                    }
                }
                if !sent {
                    break;
                }
            }
            let _ = socket.close(None).await;
        });
        Ok(Live { stop, task })
    }

    /// A packed `delivery-request` for a batch, and its id.
    async fn delivery_request(
        &self,
        mediation: &Mediation,
    ) -> Result<(String, String), WalletError> {
        let request = pickup::delivery_request_message(
            mediation.pickup,
            &pickup::DeliveryRequest {
                limit: super::PICKUP_BATCH,
                recipient_did: None,
            },
        );
        let id = request.id.clone();
        Ok((id, self.packed_for_mediator(mediation, request).await?))
    }

    /// Handles one frame from the mediator; returns the acknowledgement to send back when it
    /// was a delivery.
    async fn live_frame(
        &self,
        mediation: &Mediation,
        text: &str,
    ) -> Result<Option<Acknowledgement>, WalletError> {
        let unpacked = self.didcomm.unpack(text).await?;
        // The status answering live-delivery-change, or anything else, asks nothing of us.
        if !super::is_delivery(&unpacked.message) {
            return Ok(None);
        }
        let delivery = self.delivery_of(mediation, &unpacked.message)?;
        let _busy = self.busy.lock().await;
        let mut report = SyncReport::default();
        let received = self.receive_delivery(delivery, &mut report).await?;
        if received.is_empty() {
            return Ok(None);
        }
        let full = received.len() as u64 >= super::PICKUP_BATCH;
        let ack = pickup::messages_received_message(
            mediation.pickup,
            &pickup::MessagesReceived {
                message_id_list: received,
            },
        );
        Ok(Some(Acknowledgement {
            ack: self.packed_for_mediator(mediation, ack).await?,
            thid: unpacked.message.thid.clone(),
            full,
        }))
    }
}

/// What a delivery received in live mode is answered with.
struct Acknowledgement {
    /// The packed `messages-received`.
    ack: String,
    /// The request the delivery answered, if it answered one (pushes answer none).
    thid: Option<String>,
    /// Whether it carried a whole batch, so more may wait.
    full: bool,
}
