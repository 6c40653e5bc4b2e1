//! A flood of forwards at an agent (or a balancer in front of several), for the no-loss tests:
//! packed before it starts, sent by a few concurrent senders, with which ones were
//! acknowledged (202) kept; and the phone's side afterwards: every message it picks up, by the
//! number the flood gave it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanyard_protocol::didcomm::ENCRYPTED_TYP;

use crate::{Agent, Issuer, Phone};

/// Forwards being sent: `n` of them, numbered `0..n` (the number is the message's content,
/// `offer N`).
pub struct Flood {
    total: usize,
    next: Arc<AtomicUsize>,
    acked: Arc<Mutex<BTreeSet<usize>>>,
    failed: Arc<AtomicUsize>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

/// What a flood ended with.
pub struct Flooded {
    /// The forwards answered 202.
    pub acked: BTreeSet<usize>,
    /// The forwards that got no answer or a 502–504 (in flight at an agent that died).
    pub failed: usize,
}

impl Flood {
    /// Packs `total` forwards for `phone` through `agent`, then starts `senders` tasks sending
    /// them to `agent`'s `/didcomm`. A 202 is an acknowledgement; no answer or a 502–504 (the
    /// agent, or the balancer for it, went away) is a failure the flood goes on after; any
    /// other answer fails the test.
    pub async fn start(agent: &Agent, phone: &str, total: usize, senders: usize) -> Flood {
        // Packed first, so the flood measures the agent, not the packing.
        let issuer = Issuer::new();
        let mut packed = Vec::with_capacity(total);
        for n in 0..total {
            packed.push(issuer.pack_for(agent, phone, n as u32).await);
        }
        let packed = Arc::new(packed);
        let next = Arc::new(AtomicUsize::new(0));
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let failed = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let endpoint = format!("{}/didcomm", agent.url);
        let senders = (0..senders)
            .map(|_| {
                let (packed, next, acked, failed, client, endpoint) = (
                    packed.clone(),
                    next.clone(),
                    acked.clone(),
                    failed.clone(),
                    client.clone(),
                    endpoint.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= packed.len() {
                            return;
                        }
                        let sent = client
                            .post(&endpoint)
                            .header("content-type", ENCRYPTED_TYP)
                            .body(packed[n].clone())
                            .send()
                            .await;
                        match sent.map(|response| response.status().as_u16()) {
                            Ok(202) => {
                                acked.lock().unwrap().insert(n);
                            }
                            Ok(502..=504) | Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(status) => panic!("forward {n} answered {status}"),
                        }
                    }
                })
            })
            .collect();
        Flood {
            total,
            next,
            acked,
            failed,
            senders,
        }
    }

    /// Waits until `n` forwards were acknowledged (panics after `within`).
    pub async fn wait_acked(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.acked.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "the flood stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// How many forwards the senders took up so far.
    pub fn sent(&self) -> usize {
        self.next.load(Ordering::SeqCst).min(self.total)
    }

    /// Waits for the senders to send the rest; what was acknowledged and what failed.
    pub async fn finish(self) -> Flooded {
        for sender in self.senders {
            sender.await.unwrap();
        }
        Flooded {
            acked: self.acked.lock().unwrap().clone(),
            failed: self.failed.load(Ordering::SeqCst),
        }
    }
}

/// Picks up (and acknowledges) everything waiting for `phone` at `agent`: the flood's number of
/// each message, in the order delivered.
pub async fn pick_up_all(phone: &Phone, agent: &Agent) -> Vec<usize> {
    let mut received = Vec::new();
    loop {
        let batch = phone.pick_up(agent, 100).await;
        if batch.is_empty() {
            return received;
        }
        received.extend(batch.into_iter().map(|m| {
            m.body["content"]
                .as_str()
                .expect("a flood message has text content")
                .trim_start_matches("offer ")
                .parse::<usize>()
                .expect("a flood message is numbered")
        }));
    }
}

/// Asserts that every acknowledged forward was `received`, and none twice.
pub fn assert_each_acknowledged_once(acked: &BTreeSet<usize>, received: &[usize]) {
    let unique: BTreeSet<usize> = received.iter().copied().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "a message was delivered twice after its acknowledgement"
    );
    let lost: Vec<&usize> = acked.difference(&unique).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged forwards were lost: {lost:?}",
        lost.len()
    );
}
