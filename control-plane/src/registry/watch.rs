//! Following a store prefix: a full list, then its changes, listed again
//! whenever the watch window expires. The controllers and the node view
//! build their caches on it.

use serde_json::Value;
use tokio::sync::mpsc;

use crate::store::{Event, Store};

/// Forwards store events under `prefix` (after a full list) to `on_event`;
/// re-lists when the watch window expires. Runs until `on_event` returns
/// `false`.
pub fn watch_prefix(
    store: std::sync::Arc<dyn Store>,
    prefix: String,
    mut on_event: impl FnMut(Option<Event>) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok(revision) = store.revision().await else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            // `None` asks the receiver for a full resync.
            if !on_event(None) {
                return;
            }
            let mut events: mpsc::Receiver<Event> = match store.watch(&prefix, revision).await {
                Ok(w) => w,
                Err(_) => continue,
            };
            while let Some(event) = events.recv().await {
                if !on_event(Some(event)) {
                    return;
                }
            }
            tracing::info!(%prefix, "watch ended (fell behind or store closed); re-listing");
        }
    })
}

/// The object of a store event.
pub fn object_of(event: &Event) -> Option<Value> {
    serde_json::from_slice(&event.value).ok()
}
