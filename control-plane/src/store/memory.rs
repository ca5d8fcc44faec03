//! [`Store`] in memory, for unit tests: same semantics as the durable store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::live::{LiveFeed, forward};
use super::{
    EVENT_WINDOW, Event, EventKind, KeyValue, Listing, Result, Snapshot, Store, StoreError, Write,
};

struct Inner {
    objects: BTreeMap<String, (Vec<u8>, u64)>,
    events: VecDeque<Event>,
    revision: u64,
}

/// See the module documentation.
pub struct MemoryStore {
    // std Mutex: never held across an await.
    inner: Mutex<Inner>,
    live: LiveFeed,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                events: VecDeque::new(),
                revision: 0,
            }),
            live: LiveFeed::new(4096),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, inner: &mut Inner, kind: EventKind, key: &str, value: Vec<u8>) -> u64 {
        inner.revision += 1;
        let event = Event {
            kind,
            key: key.to_string(),
            value: value.into(),
            revision: inner.revision,
        };
        inner.events.push_back(event.clone());
        while inner.events.len() as u64 > EVENT_WINDOW {
            inner.events.pop_front();
        }
        self.live.publish([event]);
        inner.revision
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<KeyValue> {
        let inner = self.lock();
        inner
            .objects
            .get(key)
            .map(|(value, revision)| KeyValue {
                key: key.to_string(),
                value: value.clone(),
                revision: *revision,
            })
            .ok_or_else(|| StoreError::NotFound(key.to_string()))
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let inner = self.lock();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, r))| KeyValue {
                key: k.clone(),
                value: v.clone(),
                revision: *r,
            })
            .collect();
        Ok(Listing {
            items,
            revision: inner.revision,
        })
    }

    async fn snapshot(&self, prefix: &str) -> Result<Box<dyn Snapshot>> {
        // Test-sized data: a copy is the simplest consistent view.
        let listing = self.list(prefix).await?;
        Ok(Box::new(Copied {
            prefix: prefix.to_string(),
            listing,
        }))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<u64> {
        let mut inner = self.lock();
        if inner.objects.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let revision = self.record(&mut inner, EventKind::Added, key, value.clone());
        inner.objects.insert(key.to_string(), (value, revision));
        Ok(revision)
    }

    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<u64> {
        let mut inner = self.lock();
        let actual = inner
            .objects
            .get(key)
            .map(|(_, r)| *r)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if actual != expected {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            });
        }
        let revision = self.record(&mut inner, EventKind::Modified, key, value.clone());
        inner.objects.insert(key.to_string(), (value, revision));
        Ok(revision)
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<Vec<u64>> {
        let mut inner = self.lock();
        // Check everything first against the state the earlier writes of
        // the batch will have made, so that a failure changes nothing.
        let mut staged: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
        let mut next = inner.revision;
        for w in &writes {
            next += 1;
            let (key, expected) = match w {
                Write::Create { key, .. } => (key.as_str(), None),
                Write::Update { key, expected, .. } => (key.as_str(), Some(*expected)),
            };
            let actual = staged
                .get(key)
                .copied()
                .or_else(|| inner.objects.get(key).map(|(_, r)| *r));
            match (expected, actual) {
                (None, Some(_)) => return Err(StoreError::AlreadyExists(key.to_string())),
                (Some(_), None) => return Err(StoreError::NotFound(key.to_string())),
                (Some(expected), Some(actual)) if expected != actual => {
                    return Err(StoreError::Conflict {
                        key: key.to_string(),
                        expected,
                        actual,
                    });
                }
                _ => {}
            }
            staged.insert(key, next);
        }
        let mut revisions = Vec::with_capacity(writes.len());
        for w in writes {
            let (kind, key, value) = match w {
                Write::Create { key, value } => (EventKind::Added, key, value),
                Write::Update { key, value, .. } => (EventKind::Modified, key, value),
            };
            let revision = self.record(&mut inner, kind, &key, value.clone());
            inner.objects.insert(key, (value, revision));
            revisions.push(revision);
        }
        Ok(revisions)
    }

    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<(u64, Vec<u8>)> {
        let mut inner = self.lock();
        let (value, actual) = inner
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            });
        }
        inner.objects.remove(key);
        let revision = self.record(&mut inner, EventKind::Deleted, key, value.clone());
        Ok((revision, value))
    }

    async fn watch(&self, prefix: &str, from: u64) -> Result<mpsc::Receiver<Event>> {
        let (replay, live) = {
            let inner = self.lock();
            let oldest = inner
                .events
                .front()
                .map_or(inner.revision + 1, |e| e.revision);
            if from + 1 < oldest {
                return Err(StoreError::Expired {
                    requested: from,
                    oldest: oldest.saturating_sub(1),
                });
            }
            let replay: Vec<Event> = inner
                .events
                .iter()
                .filter(|e| e.revision > from && e.key.starts_with(prefix))
                .cloned()
                .collect();
            (replay, self.live.subscribe(prefix))
        };
        Ok(forward(from, replay, live))
    }

    async fn revision(&self) -> Result<u64> {
        Ok(self.lock().revision)
    }
}

/// A snapshot of the memory store: a copy of the listing.
struct Copied {
    prefix: String,
    listing: Listing,
}

#[async_trait]
impl Snapshot for Copied {
    fn revision(&self) -> u64 {
        self.listing.revision
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn next(&mut self, after: &str, limit: usize) -> Result<Vec<KeyValue>> {
        let items = &self.listing.items;
        let start = items.partition_point(|kv| kv.key.as_str() <= after);
        Ok(items[start..].iter().take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_suite() {
        super::super::conformance::run_all(|| async { MemoryStore::new() }).await;
    }
}
