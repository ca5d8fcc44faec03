//! The object store: a key-value log with one global, monotonically
//! increasing revision that becomes every object's `resourceVersion`.
//!
//! - [`sqlite::SqliteStore`]: the durable default (SQLite in WAL mode, as k3s
//!   does with kine): a write is acknowledged only after it is committed, so
//!   a control plane killed with SIGKILL loses nothing it acknowledged.
//! - [`memory::MemoryStore`]: the same semantics in memory, for unit tests.
//!
//! Both keep a bounded window of past events so a watch from a recent
//! revision replays exactly; an older one gets [`StoreError::Expired`]
//! (HTTP 410 `Expired`, as upstream). Live events reach only the watches
//! of a prefix of their key (`live`). [`conformance`] holds the test suite
//! every implementation must pass.

pub mod conformance;
mod live;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// How many past events a store keeps for watches.
pub const EVENT_WINDOW: u64 = 10_000;

/// Errors of store operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No object at the key.
    #[error("key {0} not found")]
    NotFound(String),
    /// An object exists at the key already.
    #[error("key {0} already exists")]
    AlreadyExists(String),
    /// The object changed since the revision the caller read.
    #[error("key {key} changed: expected revision {expected}, found {actual}")]
    Conflict {
        /// The key.
        key: String,
        /// Revision the caller expected.
        expected: u64,
        /// Revision stored.
        actual: u64,
    },
    /// The requested revision is older than the event window.
    #[error("revision {requested} is too old (oldest available {oldest})")]
    Expired {
        /// Requested revision.
        requested: u64,
        /// Oldest revision a watch can start from.
        oldest: u64,
    },
    /// The backend failed.
    #[error("storage failure: {0}")]
    Backend(String),
    /// An admission step refused the write (the message is the API's,
    /// e.g. `pods "x" is forbidden: violates PodSecurity ...`).
    #[error("{0}")]
    Refused(String),
}

/// Result of store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stored value with the revision of its last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value bytes (JSON for API objects).
    pub value: Vec<u8>,
    /// Revision of the last write of this key.
    pub revision: u64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted (`value` is the last value).
    Deleted,
}

/// One change, at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key.
    pub key: String,
    /// The new value (the deleted value for deletions). Shared, not
    /// copied, by the watchers an event is broadcast to.
    pub value: bytes::Bytes,
    /// Revision of this change.
    pub revision: u64,
}

/// A consistent listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Matching entries, ordered by key.
    pub items: Vec<KeyValue>,
    /// The store's revision at the time of the listing.
    pub revision: u64,
}

/// One write of a [`Store::write_all`] transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Creates `key`; fails if it exists.
    Create {
        /// The key.
        key: String,
        /// Its value.
        value: Vec<u8>,
    },
    /// Replaces `key` if its revision is still `expected`.
    Update {
        /// The key.
        key: String,
        /// Revision the caller read.
        expected: u64,
        /// The new value.
        value: Vec<u8>,
    },
}

/// A consistent read-only view of the keys under one prefix, at one
/// revision, read in batches: a long listing neither holds every object in
/// memory at once nor mixes states of different revisions. Dropping it
/// releases whatever it pins in the store.
#[async_trait]
pub trait Snapshot: Send {
    /// The store revision the view shows.
    fn revision(&self) -> u64;
    /// The prefix the view covers.
    fn prefix(&self) -> &str;
    /// Up to `limit` entries with keys greater than `after` (from the first
    /// key when `after` is empty), in key order.
    async fn next(&mut self, after: &str, limit: usize) -> Result<Vec<KeyValue>>;
}

/// The store interface.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A [`Snapshot`] of the keys starting with `prefix`, at the current
    /// revision.
    async fn snapshot(&self, prefix: &str) -> Result<Box<dyn Snapshot>>;
    /// The value at `key`.
    async fn get(&self, key: &str) -> Result<KeyValue>;
    /// Every key starting with `prefix`, with the store revision.
    async fn list(&self, prefix: &str) -> Result<Listing>;
    /// Creates `key`; fails if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<u64>;
    /// Replaces `key` if its revision is still `expected` (compare-and-swap).
    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<u64>;
    /// Several writes in one transaction, checked and applied in order (a
    /// write sees the ones before it): either all commit, each at its own
    /// consecutive revision, or none does and the first failure is
    /// returned. Acknowledged only once committed, like single writes;
    /// watchers see the events after the commit, in order. Returns the
    /// revision of each write.
    async fn write_all(&self, writes: Vec<Write>) -> Result<Vec<u64>>;
    /// Deletes `key` (if `expected` is given, only at that revision). Returns
    /// the deletion's revision and the last value.
    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<(u64, Vec<u8>)>;
    /// Changes under `prefix` after revision `from`, first replayed from the
    /// window, then live. The channel closes when the store goes away or the
    /// watcher falls too far behind.
    async fn watch(&self, prefix: &str, from: u64) -> Result<mpsc::Receiver<Event>>;
    /// The current revision.
    async fn revision(&self) -> Result<u64>;
}
