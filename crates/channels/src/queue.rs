//! Durable before acknowledged (external-apis.md §1.4): a webhook body is committed to the database before
//! Meta gets its 200. Requests arriving together share one commit (group commit): a single writer task
//! takes whatever is waiting, inserts it in one transaction and answers every request of the batch, so the
//! cost of a commit (an fsync on SQLite, a round trip and WAL flush on PostgreSQL) is paid once per batch
//! instead of once per request.

use mtdesk_storage::Store;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

/// Most bodies one commit takes.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer at most; beyond that new requests wait for room (back-pressure).
const CAPACITY: usize = 4096;
/// Concurrent writers on PostgreSQL (one on SQLite).
const PG_WRITERS: usize = 3;

type Pending = (Vec<u8>, oneshot::Sender<Result<(), String>>);

/// The handle requests enqueue through. Cheap to clone.
#[derive(Clone)]
pub struct WebhookQueue {
    tx: mpsc::Sender<Pending>,
}

impl WebhookQueue {
    /// Starts the writer task on the current Tokio runtime. `wake` is notified after each commit.
    pub fn start(store: Store, wake: Arc<Notify>) -> Self {
        let (tx, rx) = mpsc::channel(CAPACITY);
        // SQLite has one writer at a time anyway. PostgreSQL commits concurrently: while one batch waits
        // for its commit (a WAL flush), the next batch is collected and sent by another writer.
        let writers = match store.backend() {
            mtdesk_storage::Backend::Sqlite => 1,
            mtdesk_storage::Backend::Postgres => PG_WRITERS,
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(writer(store.clone(), rx.clone(), wake.clone()));
        }
        Self { tx }
    }

    /// Returns once `body` is committed. An error means it was not stored (the caller answers 5xx and
    /// Meta delivers again).
    pub async fn enqueue(&self, body: Vec<u8>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((body, done))
            .await
            .map_err(|_| "the webhook writer stopped".to_string())?;
        wait.await
            .map_err(|_| "the webhook writer stopped".to_string())?
    }
}

async fn writer(
    store: Store,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    wake: Arc<Notify>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            // The receiver is held only while collecting a batch, never during the commit.
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            batch.push(first);
            // Everything that arrived while the previous commit ran joins this one.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
        }
        let bodies: Vec<&[u8]> = batch.iter().map(|(b, _)| b.as_slice()).collect();
        let result = store
            .enqueue_webhook_events(&bodies)
            .await
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, events = batch.len(), "storing webhook events failed; Meta will deliver them again");
        }
        for (_, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
        if result.is_ok() {
            // Every idle worker: a batch is work for all of them.
            wake.notify_waiters();
            wake.notify_one();
        }
    }
}
