//! Group commit for the agent's sled stores (the mediator's, the invitations', the issuer's):
//! writes go to sled's memory first; a committer thread then runs one `flush` (fsync) for every
//! write that was waiting when it started, so concurrent requests share one fsync instead of
//! paying one each. A write has reached disk when [`GroupCommit::durable`] returns.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::storage::StorageError;

/// What the committer answers each waiter: the flush's outcome, shared by its batch.
type Flushed = Result<(), Arc<sled::Error>>;

/// One fsync for every write waiting when it starts, after a short window for more to join.
pub(crate) struct GroupCommit {
    waiters: Mutex<mpsc::Sender<tokio::sync::oneshot::Sender<Flushed>>>,
}

impl GroupCommit {
    /// Starts the committer thread for `db`. `window` is how long it waits after the first
    /// write of a batch for others to join before it flushes. The thread ends when the
    /// `GroupCommit` is dropped.
    pub(crate) fn start(db: sled::Db, window: Duration) -> Result<GroupCommit, StorageError> {
        let (sender, receiver) = mpsc::channel::<tokio::sync::oneshot::Sender<Flushed>>();
        std::thread::Builder::new()
            .name("sled-group-commit".into())
            .spawn(move || {
                // Ends when the storage (every sender) is dropped.
                while let Ok(first) = receiver.recv() {
                    if !window.is_zero() {
                        std::thread::sleep(window);
                    }
                    let mut batch = vec![first];
                    batch.extend(receiver.try_iter());
                    let result = db.flush().map(|_| ()).map_err(Arc::new);
                    for waiter in batch {
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .map_err(|e| StorageError::Backend(format!("cannot start the committer: {e}")))?;
        Ok(GroupCommit {
            waiters: Mutex::new(sender),
        })
    }

    /// Resolves once everything written before the call is on disk.
    pub(crate) async fn durable(&self) -> Result<(), StorageError> {
        let stopped = || StorageError::Backend("the committer stopped".into());
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(sender)
            .map_err(|_| stopped())?;
        receiver
            .await
            .map_err(|_| stopped())?
            .map_err(|e| StorageError::Backend(e.to_string()))
    }
}
