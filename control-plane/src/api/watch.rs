//! `?watch=true`: a stream of JSON watch events, one per line.
//!
//! Each watcher has a bounded buffer of rendered events between the task
//! that reads the store (the pump) and the response body. A client that
//! stops reading fills it; a watcher whose buffer stays full for longer
//! than [`Limits::budget`] is terminated, as upstream's watch cache
//! terminates its unresponsive watchers: the buffer is dropped at once, the
//! store subscription and snapshot are released, and the response ends, so
//! a client that reads again resumes (or re-lists) from the last
//! `resourceVersion` it saw. The current objects (`sendInitialEvents`, or a
//! watch from `resourceVersion` "" or "0") are read from a store
//! [`Snapshot`](crate::store::Snapshot) one bounded batch at a time, only
//! while the buffer has room: a stalled client pins no store read.
//!
//! A line sent as stored (no selection, no Table) is the same for every
//! watcher, so it is rendered once and shared ([`SharedLines`]), as
//! upstream's watch cache serializes an event once for all its watchers:
//! a change that 300 watchers follow costs one rendering and one buffered
//! copy, not 300.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::list::{Render, splice_resource_version};
use super::selectors::{FieldSelector, LabelSelector};
use super::table;
use crate::registry::resources::ResourceType;
use crate::store::{Event, EventKind, KeyValue, Snapshot};

/// Objects read from a snapshot at a time for initial events.
const INITIAL_BATCH: usize = 16;

/// How much a watcher buffers, and for how long a full buffer is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Events buffered at most.
    pub events: usize,
    /// Bytes of rendered events buffered at most (a single larger event
    /// still fits an empty buffer).
    pub bytes: usize,
    /// How long the buffer may stay full before the watcher is terminated.
    pub budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            events: 100,
            bytes: 1 << 20,
            budget: Duration::from_secs(5),
        }
    }
}

/// A watch request, parsed.
pub struct WatchRequest {
    /// The watched type.
    pub rt: &'static ResourceType,
    /// Store prefix (the type, or one namespace of it).
    pub prefix: String,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion` ("" when absent).
    pub resource_version: String,
    /// `sendInitialEvents=true`.
    pub initial: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// A Table was asked for (`as=Table`).
    pub table: bool,
}

/// Why a push into a [`Buffer`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The buffer stayed full for the whole budget.
    #[error("the watcher's buffer stayed full past its budget")]
    Stalled,
    /// The response is gone (client disconnected or watcher terminated).
    #[error("the watch response is gone")]
    Closed,
}

#[derive(Default)]
struct State {
    lines: VecDeque<Bytes>,
    bytes: usize,
    /// No more lines will come; the body ends once the buffer is empty.
    finished: bool,
    /// Terminated or abandoned: the body ends now.
    closed: bool,
    waker: Option<Waker>,
}

/// A watcher's bounded buffer of rendered events, shared by the pump and
/// the response body.
pub struct Buffer {
    state: Mutex<State>,
    limits: Limits,
    /// Signalled when room is made or the body goes away.
    room: Notify,
}

impl Buffer {
    /// An empty buffer.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            limits,
            room: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn full(&self, s: &State, len: usize) -> bool {
        s.lines.len() >= self.limits.events || (s.bytes > 0 && s.bytes + len > self.limits.bytes)
    }

    /// Appends `line`, waiting at most the budget for room.
    pub async fn push(&self, line: Bytes) -> Result<(), PushError> {
        let deadline = Instant::now() + self.limits.budget;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut s = self.lock();
                if s.closed {
                    return Err(PushError::Closed);
                }
                if !self.full(&s, line.len()) {
                    s.bytes += line.len();
                    s.lines.push_back(line);
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(PushError::Stalled);
            }
        }
    }

    /// Ends the stream after what is buffered.
    pub fn finish(&self) {
        let mut s = self.lock();
        s.finished = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }

    /// Ends the stream now and frees what is buffered.
    pub fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.lines = VecDeque::new();
        s.bytes = 0;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        drop(s);
        self.room.notify_one();
    }

    /// Bytes buffered now.
    pub fn buffered(&self) -> usize {
        self.lock().bytes
    }

    /// Whether the pump is gone or the body ended.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn poll_line(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut s = self.lock();
        if s.closed {
            return Poll::Ready(None);
        }
        if let Some(line) = s.lines.pop_front() {
            s.bytes -= line.len();
            drop(s);
            self.room.notify_one();
            return Poll::Ready(Some(line));
        }
        if s.finished {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The response body: lines taken from the buffer as the client reads.
/// Dropping it (the client went away) stops the pump.
struct Lines(Arc<Buffer>);

impl tokio_stream::Stream for Lines {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_line(cx).map(|line| line.map(Ok))
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Render {
    /// The event line for `value` at `revision`, or `None` if the object
    /// does not match (or cannot be read).
    fn line(&self, kind: &str, value: &[u8], revision: u64) -> Option<Bytes> {
        let mut out = Vec::with_capacity(value.len() + 64);
        out.extend_from_slice(br#"{"type":""#);
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(br#"","object":"#);
        if self.as_stored() && splice_resource_version(value, revision, &mut out) {
            out.extend_from_slice(b"}\n");
            return Some(out.into());
        }
        let written = self.selected(value, revision, |obj| {
            if self.table {
                serde_json::to_writer(
                    &mut out,
                    &table::table(self.rt, std::slice::from_ref(obj), revision),
                )
            } else {
                serde_json::to_writer(&mut out, obj)
            }
        })?;
        written.ok()?;
        out.extend_from_slice(b"}\n");
        Some(out.into())
    }

    fn bookmark(&self, revision: u64) -> Bytes {
        let object = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": {"resourceVersion": revision.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
        let mut line = json!({"type": "BOOKMARK", "object": object}).to_string();
        line.push('\n');
        line.into()
    }
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Added => "ADDED",
        EventKind::Modified => "MODIFIED",
        EventKind::Deleted => "DELETED",
    }
}

/// Lines of recent events as stored, each rendered once for every watcher
/// (see the module documentation).
#[derive(Default)]
pub struct SharedLines {
    /// (revision, event kind, object key) → line; the newest last.
    recent: Mutex<VecDeque<(u64, &'static str, String, Bytes)>>,
}

/// Lines [`SharedLines`] keeps: watchers that follow the same changes
/// render them within moments of each other.
const SHARED_LINES: usize = 256;

impl SharedLines {
    /// The line of `key`'s `kind` event at `revision`, rendered by `render`
    /// unless another watcher already did.
    fn line(
        &self,
        revision: u64,
        kind: &'static str,
        key: &str,
        render: impl FnOnce() -> Option<Bytes>,
    ) -> Option<Bytes> {
        let found = self
            .lock()
            .iter()
            .rev()
            .find(|(r, k, stored_key, _)| *r == revision && *k == kind && stored_key == key)
            .map(|(_, _, _, line)| line.clone());
        if found.is_some() {
            return found;
        }
        // Rendered outside the lock: two watchers may both render a line
        // once, which costs less than holding the others up.
        let line = render()?;
        let mut recent = self.lock();
        if recent.len() == SHARED_LINES {
            recent.pop_front();
        }
        recent.push_back((revision, kind, key.to_string(), line.clone()));
        Some(line)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, &'static str, String, Bytes)>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Answers a watch request (see the module documentation).
pub async fn respond(state: &ApiState, request: WatchRequest) -> ApiResult<Response> {
    let store = state.store.clone();
    let rv = request.resource_version.as_str();
    let (snapshot, from) = if request.initial || rv.is_empty() || rv == "0" {
        let snapshot = store
            .snapshot(&request.prefix)
            .await
            .map_err(|e| ApiError::from_store(e, request.rt, ""))?;
        let from = snapshot.revision();
        (Some(snapshot), from)
    } else {
        let from = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
        (None, from)
    };
    let events = store
        .watch(&request.prefix, from)
        .await
        .map_err(|e| ApiError::from_store(e, request.rt, ""))?;
    let buffer = Buffer::new(state.watch_limits);
    let render = Render {
        rt: request.rt,
        labels: request.labels,
        fields: request.fields,
        table: request.table,
    };
    let pump = Pump {
        buffer: buffer.clone(),
        shared: render.as_stored().then(|| state.watch_lines.clone()),
        render,
        initial: request.initial,
        from,
    };
    let deadline = request.timeout.map(|d| Instant::now() + d);
    tokio::spawn(pump.run(snapshot, events, deadline));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(Lines(buffer)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// Reads the store for one watcher and fills its buffer.
struct Pump {
    buffer: Arc<Buffer>,
    /// Where lines sent as stored are shared with the other watchers.
    shared: Option<Arc<SharedLines>>,
    render: Render,
    initial: bool,
    from: u64,
}

impl Pump {
    async fn run(
        self,
        snapshot: Option<Box<dyn Snapshot>>,
        events: tokio::sync::mpsc::Receiver<Event>,
        deadline: Option<Instant>,
    ) {
        let work = self.stream(snapshot, events);
        let outcome = match deadline {
            Some(d) => tokio::time::timeout_at(d, work)
                .await
                .unwrap_or(Err(PushError::Closed)),
            None => work.await,
        };
        match outcome {
            // timeoutSeconds passed or the store went away: what is
            // buffered is still delivered.
            Ok(()) => self.buffer.finish(),
            Err(PushError::Stalled) => {
                tracing::info!(
                    resource = self.render.rt.plural,
                    "terminating an unresponsive watcher"
                );
                self.buffer.close();
            }
            Err(PushError::Closed) => self.buffer.finish(),
        }
    }

    async fn stream(
        &self,
        mut snapshot: Option<Box<dyn Snapshot>>,
        mut events: tokio::sync::mpsc::Receiver<Event>,
    ) -> Result<(), PushError> {
        if let Some(snapshot) = snapshot.as_mut() {
            let mut after = String::new();
            loop {
                let batch: Vec<KeyValue> = snapshot
                    .next(&after, INITIAL_BATCH)
                    .await
                    .map_err(|_| PushError::Closed)?;
                let Some(last) = batch.last() else { break };
                after.clone_from(&last.key);
                for kv in batch {
                    if let Some(line) = self.line("ADDED", &kv.key, &kv.value, kv.revision) {
                        self.buffer.push(line).await?;
                    }
                }
            }
        }
        drop(snapshot);
        if self.initial {
            self.buffer.push(self.render.bookmark(self.from)).await?;
        }
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                // The body went away while no event came.
                () = self.closed() => return Err(PushError::Closed),
            };
            let Some(event) = event else { return Ok(()) };
            let kind = kind_name(event.kind);
            if let Some(line) = self.line(kind, &event.key, &event.value, event.revision) {
                self.buffer.push(line).await?;
            }
        }
    }

    /// The line of `key`'s `kind` event, shared with other watchers when
    /// it goes out as stored.
    fn line(&self, kind: &'static str, key: &str, value: &[u8], revision: u64) -> Option<Bytes> {
        match &self.shared {
            Some(shared) => shared.line(revision, kind, key, || {
                self.render.line(kind, value, revision)
            }),
            None => self.render.line(kind, value, revision),
        }
    }

    async fn closed(&self) {
        loop {
            let room = self.buffer.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.buffer.is_closed() {
                return;
            }
            room.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_rendered_once_for_every_watcher_of_its_event() {
        let shared = SharedLines::default();
        let renders = std::cell::Cell::new(0);
        let render = |text: &'static str| {
            renders.set(renders.get() + 1);
            Some(Bytes::from_static(text.as_bytes()))
        };
        let a = shared.line(5, "ADDED", "/cm/default/a", || render("a5"));
        let again = shared.line(5, "ADDED", "/cm/default/a", || render("other"));
        assert_eq!(
            (a.as_deref(), again.as_deref()),
            (Some(&b"a5"[..]), Some(&b"a5"[..]))
        );
        assert_eq!(renders.get(), 1);
        // Another object, kind or revision is another line.
        shared.line(5, "ADDED", "/cm/default/b", || render("b5"));
        shared.line(5, "MODIFIED", "/cm/default/a", || render("m5"));
        shared.line(6, "ADDED", "/cm/default/a", || render("a6"));
        assert_eq!(renders.get(), 4);
        // A line nobody could render is not kept.
        assert_eq!(shared.line(7, "ADDED", "/x", || None), None);
        for r in 0..SHARED_LINES as u64 + 1 {
            shared.line(100 + r, "ADDED", "/k", || render("n"));
        }
        assert_eq!(shared.lock().len(), SHARED_LINES, "bounded");
    }
    use serde_json::Value;
    use std::future::poll_fn;

    fn limits(events: usize, bytes: usize) -> Limits {
        Limits {
            events,
            bytes,
            budget: Duration::from_millis(200),
        }
    }

    async fn take(buffer: &Buffer) -> Option<Bytes> {
        poll_fn(|cx| buffer.poll_line(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_gets_every_line_in_order() {
        let buffer = Buffer::new(limits(2, 1024));
        let producer = {
            let buffer = buffer.clone();
            tokio::spawn(async move {
                for i in 0..50u32 {
                    buffer.push(Bytes::from(i.to_string())).await?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                buffer.finish();
                Ok::<_, PushError>(())
            })
        };
        let mut got = Vec::new();
        while let Some(line) = take(&buffer).await {
            got.push(String::from_utf8(line.to_vec()).expect("utf8"));
            // Slower than the producer, but within the budget.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(producer.await.expect("task"), Ok(()));
        let expected: Vec<String> = (0..50).map(|i: u32| i.to_string()).collect();
        assert_eq!(got, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_past_the_budget_stalls_the_pump_and_close_frees_it() {
        let buffer = Buffer::new(limits(3, 1024));
        for _ in 0..3 {
            buffer.push(Bytes::from_static(b"x")).await.expect("room");
        }
        let started = Instant::now();
        assert_eq!(
            buffer.push(Bytes::from_static(b"y")).await,
            Err(PushError::Stalled)
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        buffer.close();
        assert_eq!(buffer.buffered(), 0, "terminating frees the buffer");
        assert_eq!(take(&buffer).await, None, "the body ends at once");
        assert_eq!(
            buffer.push(Bytes::from_static(b"z")).await,
            Err(PushError::Closed)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_bound_the_buffer_but_one_big_line_fits() {
        let buffer = Buffer::new(limits(100, 10));
        buffer
            .push(Bytes::from(vec![b'a'; 50]))
            .await
            .expect("an empty buffer takes any line");
        assert_eq!(
            buffer.push(Bytes::from_static(b"b")).await,
            Err(PushError::Stalled)
        );
        assert_eq!(take(&buffer).await.map(|l| l.len()), Some(50));
        buffer.push(Bytes::from_static(b"b")).await.expect("room");
        buffer.finish();
        assert_eq!(take(&buffer).await, Some(Bytes::from_static(b"b")));
        assert_eq!(take(&buffer).await, None, "finished and drained");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_body_stops_a_waiting_pump() {
        let buffer = Buffer::new(limits(1, 1024));
        buffer.push(Bytes::from_static(b"x")).await.expect("room");
        let waiting = {
            let buffer = buffer.clone();
            tokio::spawn(async move { buffer.push(Bytes::from_static(b"y")).await })
        };
        tokio::task::yield_now().await;
        drop(Lines(buffer.clone()));
        assert_eq!(waiting.await.expect("task"), Err(PushError::Closed));
    }

    #[test]
    fn lines_splice_the_resource_version_or_filter() {
        let rt = crate::registry::kinds::CONFIGMAPS;
        let plain = Render {
            rt,
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            table: false,
        };
        let value = br#"{"kind":"ConfigMap","metadata":{"name":"a","labels":{"app":"x"}}}"#;
        let line = plain.line("MODIFIED", value, 7).expect("line");
        assert!(line.ends_with(b"\n"));
        let parsed: Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(parsed["type"], "MODIFIED");
        assert_eq!(parsed["object"]["metadata"]["resourceVersion"], "7");
        let selected = Render {
            labels: LabelSelector::parse("app=y").expect("selector"),
            ..plain
        };
        assert_eq!(selected.line("ADDED", value, 7), None);
    }
}
