//! [`Store`] on SQLite (WAL): the durable default.
//!
//! One table holds current objects, another the event log (bounded to
//! [`EVENT_WINDOW`] entries). Writes go to one writer thread that commits
//! them in groups: whatever writes arrived while the previous commit ran
//! share the next transaction (group commit, as databases and etcd's
//! backend do), each inside its own savepoint so that a failing write
//! changes nothing and does not fail the others. A write is acknowledged
//! only after its group committed, so acknowledged writes survive a
//! SIGKILL. Reads use a few separate connections (WAL lets them read the
//! last commit while the writer works) on tokio's blocking pool.
//!
//! A [`Snapshot`] pins neither a connection, a thread nor a read
//! transaction between its batches (a client that stops reading a list or
//! a watch's initial events would otherwise hold all three): each batch is
//! one short read. While any snapshot is open the writer copies the version
//! an update or delete replaces into the `kept` table, so a batch shows the
//! rows of the snapshot's revision: current rows no newer than it, plus
//! kept versions that were current then. Kept rows no open snapshot can
//! need are pruned with the next commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::live::{LiveFeed, forward};
use super::{
    EVENT_WINDOW, Event, EventKind, KeyValue, Listing, Result, Snapshot, Store, StoreError, Write,
};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Read connections.
const READERS: usize = 4;

/// Writes committed together at most.
const GROUP: usize = 1024;

/// One write request; all of it commits or none.
enum Op {
    Create(String, Vec<u8>),
    Update(String, u64, Vec<u8>),
    Delete(String, Option<u64>),
    Batch(Vec<Write>),
}

/// What a request did: revisions of its writes, and for a deletion the
/// last value.
type Done = (Vec<u64>, Option<Vec<u8>>);

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done>>,
}

struct Shared {
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// One permit per read connection.
    reading: Arc<tokio::sync::Semaphore>,
    /// Snapshot batches use at most half the read connections, so point
    /// reads (gets, the reads of writes) never queue behind many watches'
    /// and lists' batches.
    batching: Arc<tokio::sync::Semaphore>,
    writer: Mutex<std_mpsc::Sender<Job>>,
    /// Held while a commit's events are published and while a watch
    /// subscribes and replays: no event is missed between the two.
    gate: Arc<Mutex<()>>,
    live: Arc<LiveFeed>,
    /// Revisions of the open snapshots (with their counts). The writer
    /// holds it while it commits, so a snapshot's revision and the
    /// writer's decision to keep replaced versions never race.
    snapshots: Arc<Mutex<BTreeMap<u64, usize>>>,
}

impl Shared {
    /// `key` read on the caller's thread if a read connection is free at
    /// once; `None` when all are busy (the caller goes through the
    /// blocking pool). A point read is a few B-tree pages the page cache
    /// holds, microseconds of work; the blocking pool's hand-off costs two
    /// thread wake-ups, which on two cores were most of a small write's
    /// CPU (a ConfigMap create reads its namespace first; `perf`: a third
    /// of the control plane's time in context switches).
    fn point_read_here(&self, key: &str) -> Option<Result<KeyValue>> {
        let _permit = self.reading.try_acquire().ok()?;
        let conn = self.readers.iter().find_map(|conn| match conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        })?;
        Some(current(&conn, key).and_then(|found| {
            found
                .map(|(value, revision)| KeyValue {
                    key: key.to_string(),
                    value,
                    revision,
                })
                .ok_or_else(|| StoreError::NotFound(key.to_string()))
        }))
    }
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

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        // temp_store: every write of a group runs in a savepoint, whose
        // sub-journal is otherwise a temporary file. cache_size (8 MiB, the
        // default is 2): a group of a thousand writes dirties more pages
        // than the default holds, which spills them mid-transaction.
        // wal_autocheckpoint (8,192 pages, 32 MiB; default 1,000): pages
        // written again and again (the revision, the B-tree's inner pages)
        // are copied back to the database once per checkpoint, so fewer
        // checkpoints copy less; journal_size_limit gives the space back.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-8192;
             PRAGMA wal_autocheckpoint=8192;
             PRAGMA journal_size_limit=67108864;
             CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, revision INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS events (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, kind INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS kept (key TEXT NOT NULL, revision INTEGER NOT NULL, superseded INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (key, revision));
             DELETE FROM kept;
             INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);",
        )
        .map_err(backend)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open(path).map_err(backend)?;
            reader
                .execute_batch("PRAGMA busy_timeout=5000;")
                .map_err(backend)?;
            readers.push(Mutex::new(reader));
        }
        // Watchers that fall this far behind must re-list, which for a
        // controller means decoding every object again: a scheduler burst
        // of 10,000 binds overflowed 4,096. Event values are shared, and a
        // watch's queue holds pointers only while it is behind.
        let live = Arc::new(LiveFeed::new(65_536));
        let gate = Arc::new(Mutex::new(()));
        let (writer, jobs) = std_mpsc::channel();
        let snapshots = Arc::new(Mutex::new(BTreeMap::new()));
        {
            let live = live.clone();
            let gate = gate.clone();
            let snapshots = snapshots.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || write_loop(conn, jobs, &live, &gate, &snapshots))
                .map_err(backend)?;
        }
        Ok(Self {
            shared: Arc::new(Shared {
                readers,
                next_reader: AtomicUsize::new(0),
                reading: Arc::new(tokio::sync::Semaphore::new(READERS)),
                batching: Arc::new(tokio::sync::Semaphore::new(READERS / 2)),
                writer: Mutex::new(writer),
                gate,
                live,
                snapshots,
            }),
        })
    }

    /// Runs `f` on a read connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        read_on(self.shared.clone(), f).await
    }

    /// Hands `op` to the writer and waits for its group to commit.
    async fn write(&self, op: Op) -> Result<Done> {
        let (reply, done) = oneshot::channel();
        self.shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Job { op, reply })
            .map_err(|_| StoreError::Backend("the store writer stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Backend("the store writer stopped".into()))?
    }
}

/// Runs `f` on one of `shared`'s read connections, on the blocking pool.
async fn read_on<T: Send + 'static>(
    shared: Arc<Shared>,
    f: impl FnOnce(&mut Connection, &Shared) -> Result<T> + Send + 'static,
) -> Result<T> {
    // Waiting for a connection in async code, not on a blocking thread:
    // many concurrent reads (snapshot batches of many watches) would each
    // hold a thread of the blocking pool while they wait.
    let permit = shared
        .reading
        .clone()
        .acquire_owned()
        .await
        .map_err(backend)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let i = shared.next_reader.fetch_add(1, Ordering::Relaxed) % shared.readers.len();
        let mut conn = shared.readers[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn, &shared)
    })
    .await
    .map_err(backend)?
}

/// Bytes of values one snapshot batch returns at most (besides its first
/// entry): a batch of large objects stays a bounded copy.
pub const BATCH_BYTES: usize = 1 << 20;

/// Up to `limit` entries of `prefix` after `after` as they were at
/// `revision`, in one read transaction: current rows written at or before
/// it, and kept versions that were current then.
fn batch_at(
    conn: &mut Connection,
    prefix: &str,
    revision: u64,
    after: &str,
    limit: usize,
) -> Result<Vec<KeyValue>> {
    let upper = format!("{prefix}\u{ffff}");
    // One lower bound per query, so SQLite seeks the key index to it.
    let (op, lower) = if after < prefix {
        (">=", prefix)
    } else {
        (">", after)
    };
    let limit = limit.min(i64::MAX as usize) as i64;
    let tx = conn.transaction().map_err(backend)?;
    let rows = |sql: &str| key_values(&tx, sql, params![lower, upper, revision as i64, limit]);
    let current = rows(&format!(
        "SELECT key, value, revision FROM objects WHERE key {op} ?1 AND key < ?2 AND revision <= ?3 ORDER BY key LIMIT ?4"
    ))?;
    let kept = rows(&format!(
        "SELECT key, value, revision FROM kept WHERE key {op} ?1 AND key < ?2 AND revision <= ?3 AND superseded > ?3 ORDER BY key LIMIT ?4"
    ))?;
    drop(tx);
    Ok(merge(current, kept, limit as usize, BATCH_BYTES))
}

/// The rows of `sql`, a `SELECT key, value, revision` query, as entries.
fn key_values(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<KeyValue>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    stmt.query_map(params, |r| {
        Ok(KeyValue {
            key: r.get(0)?,
            value: r.get(1)?,
            revision: r.get::<_, i64>(2)? as u64,
        })
    })
    .map_err(backend)?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(backend)
}

/// The first `limit` entries of two key-ordered runs with distinct keys, in
/// key order, stopping once `bytes` of values are gathered.
fn merge(a: Vec<KeyValue>, b: Vec<KeyValue>, limit: usize, bytes: usize) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(limit.min(a.len() + b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    let mut size = 0;
    while out.len() < limit && (out.is_empty() || size < bytes) {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y.key < x.key => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        };
        let Some(kv) = next else { break };
        size += kv.value.len();
        out.push(kv);
    }
    out
}

/// See [`Snapshot`] and the module documentation: a revision and the
/// registration that makes the writer keep what it replaces.
struct SqliteSnapshot {
    prefix: String,
    revision: u64,
    shared: Arc<Shared>,
}

impl Drop for SqliteSnapshot {
    fn drop(&mut self) {
        let mut open = self
            .shared
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.revision) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.revision);
            }
        }
    }
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
        let (prefix, revision, after) = (self.prefix.clone(), self.revision, after.to_string());
        let _batching = self
            .shared
            .batching
            .clone()
            .acquire_owned()
            .await
            .map_err(backend)?;
        read_on(self.shared.clone(), move |conn, _| {
            batch_at(conn, &prefix, revision, &after, limit)
        })
        .await
    }
}

/// The writer thread: takes whatever requests are queued (up to
/// [`GROUP`]), applies each in a savepoint, commits once, then publishes
/// the events and answers. Ends when the store is dropped.
fn write_loop(
    mut conn: Connection,
    jobs: std_mpsc::Receiver<Job>,
    live: &LiveFeed,
    gate: &Mutex<()>,
    snapshots: &Mutex<BTreeMap<u64, usize>>,
) {
    // Whether `kept` may hold rows (it is emptied at open).
    let mut kept = false;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // Held through the commit: see `Shared::snapshots`.
        let open = snapshots.lock().unwrap_or_else(|p| p.into_inner());
        let keep = Keep {
            newest: open.last_key_value().map(|(r, _)| *r),
            prune: kept.then(|| open.first_key_value().map_or(u64::MAX, |(r, _)| *r)),
        };
        let committed = commit_group(&mut conn, &group, keep);
        drop(open);
        kept = keep.newest.is_some() || (kept && committed.is_err());
        let (results, events) = match committed {
            Ok(done) => done,
            Err(e) => {
                for job in group {
                    let _ = job.reply.send(Err(e.clone()));
                }
                continue;
            }
        };
        {
            let _published = gate.lock().unwrap_or_else(|p| p.into_inner());
            live.publish(events);
        }
        for (job, result) in group.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// What a group commit does for the open snapshots.
#[derive(Clone, Copy)]
struct Keep {
    /// The newest open snapshot's revision: replaced versions written at
    /// or before it are kept.
    newest: Option<u64>,
    /// Kept versions replaced at or before this revision (the oldest open
    /// snapshot's, or every one) are dropped; `None`: nothing to drop.
    prune: Option<u64>,
}

/// One transaction for a group of requests; a request that fails rolls
/// back to its savepoint and reports its error.
fn commit_group(
    conn: &mut Connection,
    group: &[Job],
    keep: Keep,
) -> Result<(Vec<Result<Done>>, Vec<Event>)> {
    let mut tx = conn.transaction().map_err(backend)?;
    if let Some(oldest) = keep.prune {
        tx.execute(
            "DELETE FROM kept WHERE superseded <= ?1",
            params![oldest.min(i64::MAX as u64) as i64],
        )
        .map_err(backend)?;
    }
    let start: u64 = tx
        .query_row("SELECT value FROM meta WHERE name='revision'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(backend)? as u64;
    let mut revision = start;
    let mut results = Vec::with_capacity(group.len());
    let mut events = Vec::new();
    for job in group {
        let mut sp = tx.savepoint().map_err(backend)?;
        let mut mine = Vec::new();
        let before = revision;
        match apply(&sp, &job.op, &mut revision, &mut mine, keep.newest) {
            Ok(last) => {
                sp.commit().map_err(backend)?;
                results.push(Ok((mine.iter().map(|e| e.revision).collect(), last)));
                events.extend(mine);
            }
            Err(e) => {
                sp.rollback().map_err(backend)?;
                drop(sp);
                revision = before;
                results.push(Err(e));
            }
        }
    }
    if revision != start {
        tx.execute(
            "UPDATE meta SET value=?1 WHERE name='revision'",
            params![revision as i64],
        )
        .map_err(backend)?;
        // Prune the window now and then (at most once per group).
        if revision > EVENT_WINDOW && revision / 100 != start / 100 {
            tx.execute(
                "DELETE FROM events WHERE revision <= ?1",
                params![(revision - EVENT_WINDOW) as i64],
            )
            .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)?;
    Ok((results, events))
}

/// Records one change in the event log; returns its revision.
type Logger<'a> = dyn FnMut(&str, EventKind, &[u8]) -> Result<u64> + 'a;

/// Applies one request inside a savepoint; returns the deleted value for
/// deletions.
fn apply(
    tx: &rusqlite::Savepoint,
    op: &Op,
    revision: &mut u64,
    events: &mut Vec<Event>,
    newest_snapshot: Option<u64>,
) -> Result<Option<Vec<u8>>> {
    // The version about to be replaced at revision `at`, if an open
    // snapshot may show it.
    let keep = |key: &str, at: u64| -> Result<()> {
        let Some(newest) = newest_snapshot else {
            return Ok(());
        };
        tx.prepare_cached(
            "INSERT OR IGNORE INTO kept (key, revision, superseded, value) SELECT key, revision, ?2, value FROM objects WHERE key=?1 AND revision <= ?3",
        )
        .and_then(|mut st| st.execute(params![key, at as i64, newest as i64]))
        .map(|_| ())
        .map_err(backend)
    };
    let mut log = |key: &str, kind: EventKind, value: &[u8]| -> Result<u64> {
        *revision += 1;
        tx.prepare_cached(
            "INSERT INTO events (revision, key, kind, value) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![*revision as i64, key, kind_code(kind), value]))
        .map_err(backend)?;
        events.push(Event {
            kind,
            key: key.to_string(),
            value: bytes::Bytes::copy_from_slice(value),
            revision: *revision,
        });
        Ok(*revision)
    };
    let create = |key: &str, value: &[u8], log: &mut Logger| -> Result<()> {
        if revision_of(tx, key)?.is_some() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let rev = log(key, EventKind::Added, value)?;
        tx.prepare_cached("INSERT INTO objects (key, revision, value) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![key, rev as i64, value]))
            .map_err(backend)?;
        Ok(())
    };
    let update = |key: &str, expected: u64, value: &[u8], log: &mut Logger| -> Result<()> {
        let actual = revision_of(tx, key)?.ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        if actual != expected {
            return Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual,
            });
        }
        let rev = log(key, EventKind::Modified, value)?;
        keep(key, rev)?;
        tx.prepare_cached("UPDATE objects SET revision=?2, value=?3 WHERE key=?1")
            .and_then(|mut st| st.execute(params![key, rev as i64, value]))
            .map_err(backend)?;
        Ok(())
    };
    match op {
        Op::Create(key, value) => create(key, value, &mut log).map(|()| None),
        Op::Update(key, expected, value) => update(key, *expected, value, &mut log).map(|()| None),
        Op::Delete(key, expected) => {
            let (value, actual) =
                current(tx, key)?.ok_or_else(|| StoreError::NotFound(key.clone()))?;
            if let Some(expected) = expected
                && *expected != actual
            {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual,
                });
            }
            let rev = log(key, EventKind::Deleted, &value)?;
            keep(key, rev)?;
            tx.prepare_cached("DELETE FROM objects WHERE key=?1")
                .and_then(|mut st| st.execute(params![key]))
                .map_err(backend)?;
            Ok(Some(value))
        }
        Op::Batch(writes) => {
            for w in writes {
                match w {
                    Write::Create { key, value } => create(key, value, &mut log)?,
                    Write::Update {
                        key,
                        expected,
                        value,
                    } => update(key, *expected, value, &mut log)?,
                }
            }
            Ok(None)
        }
    }
}

/// The revision of `key`, without reading its value (a create or update
/// needs only this).
fn revision_of(conn: &Connection, key: &str) -> Result<Option<u64>> {
    conn.prepare_cached("SELECT revision FROM objects WHERE key=?1")
        .and_then(|mut st| {
            st.query_row(params![key], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|r| r.map(|v| v as u64))
        .map_err(backend)
}

fn current(conn: &Connection, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
    conn.prepare_cached("SELECT value, revision FROM objects WHERE key=?1")
        .and_then(|mut st| {
            st.query_row(params![key], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()
        })
        .map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<KeyValue> {
        if let Some(read) = self.shared.point_read_here(key) {
            return read;
        }
        let key = key.to_string();
        self.read(move |conn, _| {
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
        self.read(move |conn, _| {
            // One read transaction: the revision and the rows of one snapshot.
            let tx = conn.transaction().map_err(backend)?;
            let revision = tx
                .query_row("SELECT value FROM meta WHERE name='revision'", [], |r| r.get::<_, i64>(0))
                .map_err(backend)? as u64;
            // Keys are ASCII paths: everything in [prefix, prefix + U+FFFF) starts with prefix.
            let upper = format!("{prefix}\u{ffff}");
            let items = key_values(
                &tx,
                "SELECT key, value, revision FROM objects WHERE key >= ?1 AND key < ?2 ORDER BY key",
                params![prefix, upper],
            )?;
            tx.commit().map_err(backend)?;
            Ok(Listing { items, revision })
        })
        .await
    }

    async fn snapshot(&self, prefix: &str) -> Result<Box<dyn Snapshot>> {
        let revision = self
            .read(|conn, shared| {
                // Registered under the lock the writer commits under: no
                // commit after this revision misses the registration.
                let mut open = shared.snapshots.lock().unwrap_or_else(|p| p.into_inner());
                let revision = conn
                    .query_row("SELECT value FROM meta WHERE name='revision'", [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(backend)? as u64;
                *open.entry(revision).or_default() += 1;
                Ok(revision)
            })
            .await?;
        Ok(Box::new(SqliteSnapshot {
            prefix: prefix.to_string(),
            revision,
            shared: self.shared.clone(),
        }))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<u64> {
        let (revs, _) = self.write(Op::Create(key.to_string(), value)).await?;
        revs.first().copied().ok_or_else(|| backend("no revision"))
    }

    async fn update(&self, key: &str, expected: u64, value: Vec<u8>) -> Result<u64> {
        let (revs, _) = self
            .write(Op::Update(key.to_string(), expected, value))
            .await?;
        revs.first().copied().ok_or_else(|| backend("no revision"))
    }

    async fn write_all(&self, writes: Vec<Write>) -> Result<Vec<u64>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.write(Op::Batch(writes)).await?.0)
    }

    async fn delete(&self, key: &str, expected: Option<u64>) -> Result<(u64, Vec<u8>)> {
        let (revs, last) = self.write(Op::Delete(key.to_string(), expected)).await?;
        match (revs.first(), last) {
            (Some(rev), Some(value)) => Ok((*rev, value)),
            _ => Err(backend("no revision")),
        }
    }

    async fn watch(&self, prefix: &str, from: u64) -> Result<mpsc::Receiver<Event>> {
        let p = prefix.to_string();
        let (replay, live) = self
            .read(move |conn, shared| {
                // Under the gate: no group's events can be published between
                // the replay query and the subscription. Events committed
                // but not yet published come in both; `forward` drops the
                // second copy by revision.
                let _gate = shared.gate.lock().unwrap_or_else(|p| p.into_inner());
                let subscribed = shared.live.subscribe(&p);
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
                    .prepare_cached("SELECT revision, key, kind, value FROM events WHERE revision > ?1 AND key >= ?2 AND key < ?3 ORDER BY revision")
                    .map_err(backend)?;
                let replay = stmt
                    .query_map(params![from as i64, p, upper], |r| {
                        Ok(Event {
                            revision: r.get::<_, i64>(0)? as u64,
                            key: r.get(1)?,
                            kind: kind_of(r.get(2)?),
                            value: r.get::<_, Vec<u8>>(3)?.into(),
                        })
                    })
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                Ok((replay, subscribed))
            })
            .await?;
        Ok(forward(from, replay, live))
    }

    async fn revision(&self) -> Result<u64> {
        self.read(|conn, _| {
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
    async fn a_closed_watch_leaves_the_live_feed_while_its_prefix_is_quiet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db.sqlite")).expect("open");
        let before = store.shared.live.watches();
        let watch = store.watch("/quiet/", 0).await.expect("watch");
        assert_eq!(store.shared.live.watches(), before + 1);
        drop(watch);
        for _ in 0..100 {
            if store.shared.live.watches() == before {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the closed watch still follows the live feed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_but_fail_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db.sqlite")).expect("open");
        let mut w = store.watch("/c/", 0).await.expect("watch");
        // Every key twice: one create of each pair must fail, alone.
        let tasks: Vec<_> = (0..400)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .create(&format!("/c/{:03}", i % 200), b"v".to_vec())
                        .await
                })
            })
            .collect();
        let mut revisions = Vec::new();
        let mut exists = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(r) => revisions.push(r),
                Err(StoreError::AlreadyExists(_)) => exists += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((revisions.len(), exists), (200, 200));
        revisions.sort();
        assert_eq!(revisions, (1..=200).collect::<Vec<u64>>(), "no gaps");
        assert_eq!(store.list("/c/").await.expect("list").items.len(), 200);
        for expected in 1..=200 {
            let e = w.recv().await.expect("event");
            assert_eq!(e.revision, expected, "watchers see every commit in order");
        }
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
