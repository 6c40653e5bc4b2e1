//! Loopback HTTP servers standing in for what the agent calls out to.

use std::sync::Arc;

use serde_json::Value;

/// What the gateway stand-in was sent: the Authorization header and the JSON body.
pub type ReceivedSms = (Option<String>, Value);

/// An SMS gateway stand-in: an HTTP server on loopback that records what it is sent and
/// answers `status`.
pub struct SmsReceiver {
    /// Where to send (`http://127.0.0.1:PORT/sms`).
    pub url: String,
    /// What it was sent, in order.
    pub received: Arc<std::sync::Mutex<Vec<ReceivedSms>>>,
    server: tokio::task::JoinHandle<()>,
}

impl SmsReceiver {
    /// Starts it, answering every request with `status`.
    pub async fn start(status: u16) -> SmsReceiver {
        use axum::http::HeaderMap;
        let received: Arc<std::sync::Mutex<Vec<ReceivedSms>>> = Default::default();
        let log = received.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let log = log.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    log.lock().unwrap().push((auth, body.0));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SmsReceiver {
            url,
            received,
            server,
        }
    }
}

impl Drop for SmsReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A loopback HTTP server answering `status` to everything and counting the requests that
/// reach it (a host a stranger names, which the agent must not fetch).
pub async fn counting_server(
    status: axum::http::StatusCode,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let count = count.clone();
        async move {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            status
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

/// A push webhook stand-in (the wallet's wake receiver): an HTTP server on loopback that
/// answers every POST to `/wake/...` with `status` and records each body, so a test can wait
/// for the n-th wake and read what it carried.
pub struct WakeReceiver {
    /// Where the gateway POSTs (`http://127.0.0.1:PORT/wake/<random>`: the random part
    /// stands for the device token a test then looks for on disk).
    pub url: String,
    /// The random part of the URL.
    pub secret: String,
    received: Arc<(std::sync::Mutex<Vec<Vec<u8>>>, tokio::sync::Notify)>,
    server: tokio::task::JoinHandle<()>,
}

impl WakeReceiver {
    /// Starts it, answering every wake with `status`.
    pub async fn start(status: u16) -> WakeReceiver {
        let received: Arc<(std::sync::Mutex<Vec<Vec<u8>>>, tokio::sync::Notify)> =
            Default::default();
        let log = received.clone();
        let app = axum::Router::new().route(
            "/wake/{secret}",
            axum::routing::post(move |body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    log.0.lock().unwrap().push(body.to_vec());
                    log.1.notify_waiters();
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // 32 random bytes, base64url (any random text would do).
        let secret = agent::push::WakeHandle::random().to_string();
        let url = format!("http://{}/wake/{secret}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WakeReceiver {
            url,
            secret,
            received,
            server,
        }
    }

    /// The bodies of the wakes received so far, in order.
    pub fn wakes(&self) -> Vec<Vec<u8>> {
        self.received.0.lock().unwrap().clone()
    }

    /// Waits until `n` wakes arrived (panics after 60 s: a wake that never comes).
    pub async fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let wait = async {
            loop {
                let notified = self.received.1.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.received.0.lock().unwrap().len() >= n {
                    return self.wakes();
                }
                notified.await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("{n} wake(s) expected, {} came", self.wakes().len()))
    }
}

impl Drop for WakeReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
