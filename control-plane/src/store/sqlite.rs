//! [`Store`] on SQLite (WAL): the durable default.
//!
//! One table holds current objects, another the event log (bounded to
//! [`EVENT_WINDOW`] entries). Every write is one transaction that updates both
//! and commits before the call returns, so acknowledged writes survive a
//! SIGKILL. Calls run on tokio's blocking pool; one connection, one writer.
//! [`Snapshot`]s read on connections of their own, each inside a read
//! transaction (WAL readers see one committed state and do not block the
//! writer).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{
    EVENT_WINDOW, Event, EventKind, KeyValue, Listing, Result, Snapshot, Store, StoreError,
};

/// Read connections kept open for the next snapshots.
const IDLE_READERS: usize = 4;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

struct Shared {
    conn: Mutex<Connection>,
    live: broadcast::Sender<Event>,
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

/// See the module documentation.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

fn kind_code(kind: EventKind) -> i64 {
    match kind {
        EventKind::Added => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    }
}

fn kind_of(code: i64) -> EventKind {
    match code {
        0 => EventKind::Added,
        1 => EventKind::Modified,
        _ => EventKind::Deleted,
    }
}

/// Replays `replay`, then forwards live events under `prefix` newer than
/// what was replayed (shared by every store implementation).
pub(crate) fn forward(
    prefix: &str,
    from: u64,
    replay: Vec<Event>,
    mut live: broadcast::Receiver<Event>,
) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(1024);
    let prefix = prefix.to_string();
    tokio::spawn(async move {
        let mut last = from;
        for event in replay {
            last = event.revision;
            if tx.send(event).await.is_err() {
                return;
            }
        }
        loop {
            match live.recv().await {
                Ok(event) => {
                    if event.revision > last && event.key.starts_with(&prefix) {
                        last = event.revision;
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                // Fell behind the live feed: close, the watcher re-lists.
                Err(_) => return,
            }
        }
    });
    rx
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, revision INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, kind INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);",
        )
        .map_err(backend)?;
        Ok(Self {
            shared: Arc::new(Shared {
                conn: Mutex::new(conn),
                live: broadcast::channel(4096).0,
                path: path.to_path_buf(),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &broadcast::Sender<Event>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = shared.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn, &shared.live)
        })
        .await
        .map_err(backend)?
    }
}

fn reader(shared: &Shared) -> Result<Connection> {
    let idle = shared
        .readers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop();
    if let Some(conn) = idle {
        return Ok(conn);
    }
    let conn = Connection::open_with_flags(
        &shared.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    Ok(conn)
}

/// A batch a [`SqliteSnapshot`] asks its reader for.
struct BatchRequest {
    after: String,
    limit: usize,
    reply: oneshot::Sender<Result<Vec<KeyValue>>>,
}

/// Serves batches from one read transaction until the snapshot is dropped.
fn serve_snapshot(
    conn: &Connection,
    prefix: &str,
    ready: oneshot::Sender<Result<u64>>,
    requests: &mut mpsc::Receiver<BatchRequest>,
) {
    let revision = conn.execute_batch("BEGIN").and_then(|_| {
        conn.query_row("SELECT value FROM meta WHERE name='revision'", [], |r| {
            r.get::<_, i64>(0)
        })
    });
    let ok = match revision {
        Ok(r) => ready.send(Ok(r as u64)).is_ok(),
        Err(e) => {
            let _ = ready.send(Err(backend(e)));
            false
        }
    };
    if ok {
        let upper = format!("{prefix}\u{ffff}");
        while let Some(request) = requests.blocking_recv() {
            let _ = request
                .reply
                .send(batch(conn, prefix, &upper, &request.after, request.limit));
        }
    }
    let _ = conn.execute_batch("ROLLBACK");
}

fn batch(
    conn: &Connection,
    prefix: &str,
    upper: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<KeyValue>> {
    // One lower bound per query, so SQLite seeks the key index to it rather
    // than scanning from the prefix on every batch.
    let (sql, lower) = if after < prefix {
        (
            "SELECT key, value, revision FROM objects WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
            prefix,
        )
    } else {
        (
            "SELECT key, value, revision FROM objects WHERE key > ?1 AND key < ?2 ORDER BY key LIMIT ?3",
            after,
        )
    };
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    stmt.query_map(
        params![lower, upper, limit.min(i64::MAX as usize) as i64],
        |r| {
            Ok(KeyValue {
                key: r.get(0)?,
                value: r.get(1)?,
                revision: r.get::<_, i64>(2)? as u64,
            })
        },
    )
    .map_err(backend)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(backend)
}

/// See [`Snapshot`]: a reader on the blocking pool holds the transaction.
struct SqliteSnapshot {
    prefix: String,
    revision: u64,
    requests: mpsc::Sender<BatchRequest>,
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn next(&mut self, after: &str, limit: usize) -> Result<Vec<KeyValue>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(BatchRequest {
                after: after.to_string(),
                limit,
                reply,
            })
            .await
            .map_err(|_| StoreError::Backend("snapshot reader stopped".into()))?;
        answer.await.map_err(backend)?
    }
}

/// One write transaction: bump the revision, log the event, apply `change`.
fn write(
    conn: &mut Connection,
    live: &broadcast::Sender<Event>,
    key: &str,
    kind: EventKind,
    value: &[u8],
    change: impl FnOnce(&rusqlite::Transaction, u64) -> rusqlite::Result<()>,
) -> Result<u64> {
    let tx = conn.transaction().map_err(backend)?;
    let revision: u64 = tx
        .query_row("SELECT value FROM meta WHERE name='revision'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(backend)? as u64
        + 1;
    tx.execute(
        "UPDATE meta SET value=?1 WHERE name='revision'",
        params![revision as i64],
    )
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO events (revision, key, kind, value) VALUES (?1, ?2, ?3, ?4)",
        params![revision as i64, key, kind_code(kind), value],
    )
    .map_err(backend)?;
    if revision > EVENT_WINDOW && revision.is_multiple_of(100) {
        tx.execute(
            "DELETE FROM events WHERE revision <= ?1",
            params![(revision - EVENT_WINDOW) as i64],
        )
        .map_err(backend)?;
    }
    change(&tx, revision).map_err(backend)?;
    tx.commit().map_err(backend)?;
    let _ = live.send(Event {
        kind,
        key: key.to_string(),
        value: value.to_vec(),
        revision,
    });
    Ok(revision)
}

fn current(conn: &Connection, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
    conn.query_row(
        "SELECT value, revision FROM objects WHERE key=?1",
        params![key],
        |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)? as u64)),
    )
    .optional()
    .map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<KeyValue> {
        let key = key.to_string();
        self.with(move |conn, _| {
            current(conn, &key)?
                .map(|(value, revision)| KeyValue {
                    key: key.clone(),
                    value,
                    revision,
                })
                .ok_or(StoreError::NotFound(key))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Listing> {
        let prefix = prefix.to_string();
        self.with(move |conn, _| {
            let tx = conn.transaction().map_err(backend)?;
            let revision = tx
                .query_row("SELECT value FROM meta WHERE name='revision'", [], |r| r.get::<_, i64>(0))
                .map_err(backend)? as u64;
            // Keys are ASCII paths: everything in [prefix, prefix + U+FFFF) starts with prefix.
            let upper = format!("{prefix}\u{ffff}");
            let mut stmt = tx
                .prepare("SELECT key, value, revision FROM objects WHERE key >= ?1 AND key < ?2 ORDER BY key")
                .map_err(backend)?;
            let items = stmt
                .query_map(params![prefix, upper], |r| {
                    Ok(KeyValue {
                        key: r.get(0)?,
                        value: r.get(1)?,
                        revision: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            drop(stmt);
            tx.commit().map_err(backend)?;
            Ok(Listing { items, revision })
        })
        .await
    }

    async fn snapshot(&self, prefix: &str) -> Result<Box<dyn Snapshot>> {
        let (requests, mut incoming) = mpsc::channel(1);
        let (ready, revision) = oneshot::channel();
        let shared = self.shared.clone();
        let p = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let conn = match reader(&shared) {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            serve_snapshot(&conn, &p, ready, &mut incoming);
            let mut idle = shared.readers.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        });
        let revision = revision.await.map_err(backend)??;
        Ok(Box::new(SqliteSnapshot {
            prefix: prefix.to_string(),
            revision,
            requests,
        }))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<u64> {
        let key = key.to_string();
        self.with(move |conn, live| {
            if current(conn, &key)?.is_some() {
                return Err(StoreError::AlreadyExists(key));
            }
            write(conn, live, &key, EventKind::Added, &value, |tx, rev| {
                tx.execute(
                    "INSERT INTO objects (key, revision, value) VALUES (?1, ?2, ?3)",
                    params![key, rev as i64, value],
                )
                .map(|_| ())
            })
        })
        .await
    }

    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<u64> {
        let key = key.to_string();
        self.with(move |conn, live| {
            let (_, actual) =
                current(conn, &key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if actual != expected {
                return Err(StoreError::Conflict {
                    key,
                    expected,
                    actual,
                });
            }
            write(conn, live, &key, EventKind::Modified, &value, |tx, rev| {
                tx.execute(
                    "UPDATE objects SET revision=?2, value=?3 WHERE key=?1",
                    params![key, rev as i64, value],
                )
                .map(|_| ())
            })
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<(u64, Vec<u8>)> {
        let key = key.to_string();
        self.with(move |conn, live| {
            let (value, actual) =
                current(conn, &key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if let Some(expected) = expected
                && expected != actual
            {
                return Err(StoreError::Conflict {
                    key,
                    expected,
                    actual,
                });
            }
            let revision = write(conn, live, &key, EventKind::Deleted, &value, |tx, _| {
                tx.execute("DELETE FROM objects WHERE key=?1", params![key])
                    .map(|_| ())
            })?;
            Ok((revision, value))
        })
        .await
    }

    async fn watch(&self, prefix: &str, from: u64) -> Result<mpsc::Receiver<Event>> {
        let p = prefix.to_string();
        let (replay, live) = self
            .with(move |conn, live| {
                // Subscribe under the connection lock: no commit can slip
                // between the replay query and the live feed.
                let subscribed = live.subscribe();
                let (revision, oldest): (i64, Option<i64>) = conn
                    .query_row(
                        "SELECT (SELECT value FROM meta WHERE name='revision'), (SELECT MIN(revision) FROM events)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(backend)?;
                let oldest = oldest.map_or(revision as u64 + 1, |o| o as u64);
                if from + 1 < oldest {
                    return Err(StoreError::Expired {
                        requested: from,
                        oldest: oldest - 1,
                    });
                }
                let upper = format!("{p}\u{ffff}");
                let mut stmt = conn
                    .prepare("SELECT revision, key, kind, value FROM events WHERE revision > ?1 AND key >= ?2 AND key < ?3 ORDER BY revision")
                    .map_err(backend)?;
                let replay = stmt
                    .query_map(params![from as i64, p, upper], |r| {
                        Ok(Event {
                            revision: r.get::<_, i64>(0)? as u64,
                            key: r.get(1)?,
                            kind: kind_of(r.get(2)?),
                            value: r.get(3)?,
                        })
                    })
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                Ok((replay, subscribed))
            })
            .await?;
        Ok(forward(prefix, from, replay, live))
    }

    async fn revision(&self) -> Result<u64> {
        self.with(|conn, _| {
            conn.query_row("SELECT value FROM meta WHERE name='revision'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|r| r as u64)
            .map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = std::sync::atomic::AtomicU32::new(0);
        super::super::conformance::run_all(|| {
            let path = dir.path().join(format!(
                "db-{}.sqlite",
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            async move { SqliteStore::open(&path).expect("open") }
        })
        .await;
    }

    #[tokio::test]
    async fn data_and_revisions_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        {
            let store = SqliteStore::open(&path).expect("open");
            store.create("/a", b"1".to_vec()).await.expect("create");
            let rev = store.create("/b", b"2".to_vec()).await.expect("create");
            store
                .update("/b", rev, b"3".to_vec())
                .await
                .expect("update");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(store.revision().await.expect("rev"), 3);
        assert_eq!(store.get("/b").await.expect("get").value, b"3");
        let mut w = store
            .watch("/", 1)
            .await
            .expect("watch replays after reopen");
        assert_eq!(w.recv().await.expect("event").revision, 2);
    }
}
