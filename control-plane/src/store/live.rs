//! A store's live feed: each committed event goes to the watches whose
//! prefix it falls under, and only to them, then [`forward`] hands it to
//! its watcher after the replay.
//!
//! Why not one broadcast channel that every watch filters: a write then
//! wakes every watch in the process (the controllers, the indexes, the
//! garbage collector's one per kind, every API watch), some eighty tasks
//! for one ConfigMap, each cloning the event to throw it away. Routing by
//! prefix where the event is published wakes the two or three that want
//! it, as etcd's watchable store and the apiserver's watch cache dispatch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Event;

/// Watches by prefix; see the module documentation.
pub(crate) struct LiveFeed {
    watchers: Mutex<HashMap<String, Vec<mpsc::Sender<Arc<Event>>>>>,
    /// Events one watch may have queued: one that falls further behind is
    /// cut off and re-lists.
    window: usize,
}

impl LiveFeed {
    /// A feed whose watches may fall `window` events behind.
    pub(crate) fn new(window: usize) -> Self {
        Self {
            watchers: Mutex::new(HashMap::new()),
            window: window.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<mpsc::Sender<Arc<Event>>>>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new watch of `prefix`: the events published from now on whose key
    /// starts with it. The feed ends when the watch falls a window behind.
    pub(crate) fn subscribe(&self, prefix: &str) -> mpsc::Receiver<Arc<Event>> {
        // Queues fill lazily (tokio allocates in small blocks), so a large
        // window costs memory only while a watch is behind.
        let (tx, rx) = mpsc::channel(self.window);
        let mut watchers = self.lock();
        watchers.entry(prefix.to_string()).or_default().push(tx);
        rx
    }

    /// Hands each event to the watches of a prefix of its key. Watches
    /// that ended, or whose queue is full, leave the feed here.
    pub(crate) fn publish(&self, events: impl IntoIterator<Item = Event>) {
        let mut watchers = self.lock();
        for event in events {
            let event = Arc::new(event);
            watchers.retain(|prefix, senders| {
                if event.key.starts_with(prefix.as_str()) {
                    senders.retain(|tx| match tx.try_send(event.clone()) {
                        Ok(()) => true,
                        Err(TrySendError::Full(_)) => {
                            tracing::info!(%prefix, "a watch fell a window behind; cut off");
                            false
                        }
                        Err(TrySendError::Closed(_)) => false,
                    });
                } else {
                    // A watch that ended while its prefix is quiet leaves
                    // with the next write anywhere.
                    senders.retain(|tx| !tx.is_closed());
                }
                !senders.is_empty()
            });
        }
    }

    /// Watches following the feed (for tests).
    #[cfg(test)]
    pub(crate) fn watches(&self) -> usize {
        let mut watchers = self.lock();
        watchers.retain(|_, senders| {
            senders.retain(|tx| !tx.is_closed());
            !senders.is_empty()
        });
        watchers.values().map(Vec::len).sum()
    }
}

/// Replays `replay`, then forwards the live events newer than what was
/// replayed (a commit published while the watch replayed comes in both).
pub(crate) fn forward(
    from: u64,
    replay: Vec<Event>,
    mut live: mpsc::Receiver<Arc<Event>>,
) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut last = from;
        for event in replay {
            last = event.revision;
            if tx.send(event).await.is_err() {
                return;
            }
        }
        loop {
            // A watcher that went away while its prefix is quiet would
            // otherwise keep this task until the next matching change.
            let next = tokio::select! {
                next = live.recv() => next,
                () = tx.closed() => return,
            };
            // `None`: fell a window behind (or the store closed); closing
            // makes the watcher re-list.
            let Some(event) = next else { return };
            if event.revision > last {
                last = event.revision;
                if tx.send(Event::clone(&event)).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;

    fn event(key: &str, revision: u64) -> Event {
        Event {
            kind: EventKind::Added,
            key: key.to_string(),
            value: bytes::Bytes::from_static(b"{}"),
            revision,
        }
    }

    #[tokio::test]
    async fn only_the_watches_of_a_prefix_of_the_key_get_the_event() {
        let feed = LiveFeed::new(16);
        let mut pods = feed.subscribe("/registry/pods/");
        let mut lab = feed.subscribe("/registry/pods/lab/");
        let mut maps = feed.subscribe("/registry/configmaps/");
        feed.publish([
            event("/registry/pods/lab/a", 1),
            event("/registry/pods/x/b", 2),
        ]);
        assert_eq!(pods.recv().await.map(|e| e.revision), Some(1));
        assert_eq!(pods.recv().await.map(|e| e.revision), Some(2));
        assert_eq!(lab.recv().await.map(|e| e.revision), Some(1));
        assert!(lab.try_recv().is_err(), "x/b is not under lab/");
        assert!(maps.try_recv().is_err(), "no ConfigMap was written");
    }

    #[tokio::test]
    async fn a_watch_a_window_behind_is_cut_off_after_what_it_had_queued() {
        let feed = LiveFeed::new(2);
        let mut slow = feed.subscribe("/a/");
        let mut quick = feed.subscribe("/a/");
        for revision in 1..=3 {
            feed.publish([event("/a/k", revision)]);
            assert_eq!(quick.recv().await.map(|e| e.revision), Some(revision));
        }
        assert_eq!(slow.recv().await.map(|e| e.revision), Some(1));
        assert_eq!(slow.recv().await.map(|e| e.revision), Some(2));
        assert!(
            slow.recv().await.is_none(),
            "the third did not fit: cut off"
        );
        feed.publish([event("/a/k", 4)]);
        assert_eq!(quick.recv().await.map(|e| e.revision), Some(4));
        assert_eq!(feed.watches(), 1);
    }

    #[tokio::test]
    async fn an_ended_watch_leaves_with_the_next_write_anywhere() {
        let feed = LiveFeed::new(16);
        let _other = feed.subscribe("/b/");
        drop(feed.subscribe("/quiet/"));
        feed.publish([event("/b/k", 1)]);
        assert_eq!(feed.lock().len(), 1, "the quiet prefix's entry is gone");
    }

    #[tokio::test]
    async fn forward_drops_what_the_replay_already_gave() {
        let feed = LiveFeed::new(16);
        let live = feed.subscribe("/a/");
        // Revision 2 committed before the subscription but published after
        // it: in the replay and in the feed.
        feed.publish([event("/a/k", 2), event("/a/k", 3)]);
        let mut watch = forward(0, vec![event("/a/k", 1), event("/a/k", 2)], live);
        for wanted in 1..=3 {
            assert_eq!(watch.recv().await.map(|e| e.revision), Some(wanted));
        }
    }
}
