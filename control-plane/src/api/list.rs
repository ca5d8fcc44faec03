//! List responses without the whole list in memory.
//!
//! Objects are stored as JSON already, so a plain list is written as the
//! envelope followed by each stored object's bytes (with its
//! `resourceVersion` spliced into `metadata`), read from a store
//! [`Snapshot`] batch by batch and sent as a chunked body. Objects are
//! parsed only when a selector or a Table needs them, one at a time.
//!
//! `limit` and `continue` page as upstream does: a page holds up to `limit`
//! matching objects and, when more follow, a continue token. The rest of the
//! list comes from the same snapshot, parked between requests for a while,
//! so every page shows the revision of the first. A token whose snapshot is
//! gone still works if nothing changed since; otherwise it is answered with
//! 410 `Expired`, as upstream answers a token older than etcd's compaction
//! (client-go then lists again without paging).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::warn;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::selectors::{FieldSelector, LabelSelector};
use super::table;
use crate::registry::events_v1;
use crate::registry::resources::ResourceType;
use crate::store::{KeyValue, Snapshot, StoreError};

/// Objects read from the store at a time.
pub const BATCH: usize = 256;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;

/// Snapshots kept for continue tokens at most, and for how long.
const PARKED_MAX: usize = 32;
const PARKED_FOR: Duration = Duration::from_secs(60);

/// Snapshots waiting for the next page of their list.
#[derive(Default)]
pub struct Pages {
    parked: Arc<Mutex<HashMap<u64, Parked>>>,
    next_id: AtomicU64,
}

struct Parked {
    snapshot: Box<dyn Snapshot>,
    since: Instant,
}

impl Pages {
    fn park(&self, snapshot: Box<dyn Snapshot>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        // An abandoned list must not pin its snapshot: an open SQLite read
        // transaction keeps the WAL from being checkpointed.
        let expiry = Arc::downgrade(&self.parked);
        tokio::spawn(async move {
            tokio::time::sleep(PARKED_FOR).await;
            if let Some(parked) = expiry.upgrade() {
                parked.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
        });
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        if parked.len() >= PARKED_MAX
            && let Some(oldest) = parked
                .iter()
                .min_by_key(|(_, p)| p.since)
                .map(|(id, _)| *id)
        {
            parked.remove(&oldest);
        }
        parked.insert(
            id,
            Parked {
                snapshot,
                since: Instant::now(),
            },
        );
        id
    }

    fn take(&self, id: u64) -> Option<Box<dyn Snapshot>> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked
            .remove(&id)
            .filter(|p| p.since.elapsed() < PARKED_FOR)
            .map(|p| p.snapshot)
    }
}

/// A continue token: upstream's fields (`start` is the next key relative to
/// the listed prefix, NUL-terminated: "after this key"), plus the parked
/// snapshot's id.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Token {
    v: String,
    rv: i64,
    start: String,
    #[serde(default)]
    id: u64,
}

fn encode_token(prefix: &str, last_key: &str, revision: u64, id: u64) -> String {
    let token = Token {
        v: "meta.k8s.io/v1".into(),
        rv: revision as i64,
        start: format!("{}\0", last_key.strip_prefix(prefix).unwrap_or(last_key)),
        id,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The token's revision and the full key to continue after.
fn decode_token(prefix: &str, text: &str) -> ApiResult<(Token, String)> {
    let invalid = |why: &str| ApiError::bad_request(format!("invalid continue token: {why}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| invalid("not base64"))?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| invalid("not a token"))?;
    if token.v != "meta.k8s.io/v1" {
        return Err(invalid("unknown version"));
    }
    let start = token
        .start
        .strip_suffix('\0')
        .filter(|s| !s.is_empty() && !s.contains('\0'))
        .ok_or_else(|| invalid("bad start key"))?;
    let after = format!("{prefix}{start}");
    Ok((token, after))
}

fn expired() -> ApiError {
    ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
    )
}

/// A list request, parsed.
pub struct ListRequest {
    /// The listed type.
    pub rt: &'static ResourceType,
    /// Store prefix (the type, or one namespace of it).
    pub prefix: String,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (positive), if paging.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// A Table was asked for (`as=Table`).
    pub table: bool,
}

/// How items are selected and written: a list's items here, a watch's
/// events in `watch`.
pub(super) struct Render {
    pub(super) rt: &'static ResourceType,
    pub(super) labels: LabelSelector,
    pub(super) fields: FieldSelector,
    pub(super) table: bool,
}

impl Render {
    fn filtered(&self) -> bool {
        self.labels != LabelSelector::default() || self.fields != FieldSelector::default()
    }

    /// Whether items go out as the store holds them (no selection, no
    /// Table, no other group version's form).
    pub(super) fn as_stored(&self) -> bool {
        !self.table && !self.filtered() && !events_v1::converts(self.rt)
    }

    /// Hands `write` the object stored as `value` at `revision`, in the
    /// form it is served in, if it can be read and matches the selectors.
    pub(super) fn selected<R>(
        &self,
        value: &[u8],
        revision: u64,
        write: impl FnOnce(&Value) -> R,
    ) -> Option<R> {
        let mut obj: Value = serde_json::from_slice(value).ok()?;
        if !obj.is_object() {
            return None;
        }
        obj["metadata"]["resourceVersion"] = json!(revision.to_string());
        let obj = events_v1::view(self.rt, obj);
        let obj = events_v1::shown(self.rt, &obj);
        if !(self.labels.matches(obj.pointer("/metadata/labels")) && self.fields.matches(&obj)) {
            return None;
        }
        Some(write(&obj))
    }

    fn head(&self, revision: u64, continue_token: Option<&str>) -> Vec<u8> {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if let Some(token) = continue_token {
            metadata["continue"] = json!(token);
        }
        let mut out = Vec::with_capacity(CHUNK + 4096);
        if self.table {
            out.extend_from_slice(br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":"#);
            out.extend_from_slice(metadata.to_string().as_bytes());
            out.extend_from_slice(br#","columnDefinitions":"#);
            out.extend_from_slice(table::column_definitions(self.rt).to_string().as_bytes());
            out.extend_from_slice(br#","rows":["#);
        } else {
            let envelope = json!({
                "kind": format!("{}List", self.rt.kind),
                "apiVersion": self.rt.api_version(),
                "metadata": metadata,
            })
            .to_string();
            // The envelope without its closing brace, then the items array.
            let envelope = envelope.as_bytes();
            out.extend_from_slice(&envelope[..envelope.len() - 1]);
            out.extend_from_slice(br#","items":["#);
        }
        out
    }

    /// Writes `kv` (after a comma unless it is the first) if it matches;
    /// `true` if it was written. Unreadable objects are skipped.
    fn item(&self, kv: &KeyValue, out: &mut Vec<u8>, first: &mut bool) -> bool {
        let mark = out.len();
        if !*first {
            out.push(b',');
        }
        let written = if self.as_stored() {
            splice_resource_version(&kv.value, kv.revision, out) || self.write_parsed(kv, out)
        } else {
            self.write_parsed(kv, out)
        };
        if written {
            *first = false;
        } else {
            out.truncate(mark);
        }
        written
    }

    fn write_parsed(&self, kv: &KeyValue, out: &mut Vec<u8>) -> bool {
        self.selected(&kv.value, kv.revision, |obj| {
            if self.table {
                serde_json::to_writer(out, &table::row(self.rt, obj)).is_ok()
            } else if self.filtered() && !events_v1::converts(self.rt) {
                // Selected: the stored bytes go out as they are.
                splice_resource_version(&kv.value, kv.revision, out)
                    || serde_json::to_writer(out, obj).is_ok()
            } else {
                serde_json::to_writer(out, obj).is_ok()
            }
        })
        .unwrap_or(false)
    }

    fn tail(out: &mut Vec<u8>) {
        out.extend_from_slice(b"]}");
    }
}

fn json_body(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Answers a list request (see the module documentation).
pub async fn respond(state: &ApiState, request: ListRequest) -> ApiResult<Response> {
    let store_error = |e: StoreError| ApiError::from_store(e, request.rt, "");
    let (mut snapshot, mut after) = match &request.continue_token {
        None => (
            state
                .store
                .snapshot(&request.prefix)
                .await
                .map_err(store_error)?,
            String::new(),
        ),
        Some(text) => {
            let (token, after) = decode_token(&request.prefix, text)?;
            let parked = state
                .pages
                .take(token.id)
                .filter(|s| s.prefix() == request.prefix && s.revision() as i64 == token.rv);
            let snapshot = match parked {
                Some(s) => s,
                None => {
                    let fresh = state
                        .store
                        .snapshot(&request.prefix)
                        .await
                        .map_err(store_error)?;
                    // Without its snapshot a token is good only if nothing
                    // has changed since (or it asks for no consistency).
                    if token.rv >= 0 && fresh.revision() as i64 != token.rv {
                        return Err(expired());
                    }
                    fresh
                }
            };
            (snapshot, after)
        }
    };
    let render = Render {
        rt: request.rt,
        labels: request.labels,
        fields: request.fields,
        table: request.table,
    };
    let Some(limit) = request.limit else {
        return whole(render, snapshot, after, state.watch_limits.budget).await;
    };
    let mut items = Vec::new();
    let (mut first, mut count) = (true, 0);
    'pages: loop {
        let want = if render.filtered() {
            BATCH
        } else {
            BATCH.min(limit - count)
        };
        let batch = snapshot.next(&after, want).await.map_err(store_error)?;
        if batch.is_empty() {
            break;
        }
        for kv in &batch {
            after.clone_from(&kv.key);
            if render.item(kv, &mut items, &mut first) {
                count += 1;
                if count == limit {
                    break 'pages;
                }
            }
        }
    }
    let more = count == limit
        && !snapshot
            .next(&after, 1)
            .await
            .map_err(store_error)?
            .is_empty();
    let revision = snapshot.revision();
    let token = more.then(|| {
        let prefix = request.prefix.clone();
        let id = state.pages.park(snapshot);
        encode_token(&prefix, &after, revision, id)
    });
    let mut body = render.head(revision, token.as_deref());
    body.extend_from_slice(&items);
    Render::tail(&mut body);
    Ok(json_body(Body::from(body)))
}

/// The whole rest of the list. Most lists are small: one that fits in a
/// chunk goes out with a `Content-Length`; a longer one is streamed.
async fn whole(
    render: Render,
    mut snapshot: Box<dyn Snapshot>,
    mut after: String,
    budget: Duration,
) -> ApiResult<Response> {
    let mut out = render.head(snapshot.revision(), None);
    let mut first = true;
    while out.len() < CHUNK {
        let batch = snapshot
            .next(&after, BATCH)
            .await
            .map_err(|e| ApiError::from_store(e, render.rt, ""))?;
        let Some(last) = batch.last() else {
            Render::tail(&mut out);
            return Ok(json_body(Body::from(out)));
        };
        after.clone_from(&last.key);
        for kv in &batch {
            render.item(kv, &mut out, &mut first);
        }
    }
    Ok(json_body(stream(
        render, snapshot, after, out, first, budget,
    )))
}

/// The rest of the list as a chunked body (`out` first), read and written
/// batch by batch while the client takes it. A client that takes nothing
/// for `budget` is cut off (the body ends in an error): it must not keep
/// the snapshot open.
fn stream(
    render: Render,
    mut snapshot: Box<dyn Snapshot>,
    mut after: String,
    mut out: Vec<u8>,
    mut first: bool,
    budget: Duration,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        let send = |chunk: Vec<u8>| {
            let tx = tx.clone();
            async move {
                matches!(
                    tokio::time::timeout(budget, tx.send(Bytes::from(chunk))).await,
                    Ok(Ok(()))
                )
            }
        };
        loop {
            let batch = match snapshot.next(&after, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    // The status line is sent: all that is left is to cut
                    // the body short, which the client sees as an error.
                    warn!(resource = render.rt.plural, error = %e, "list aborted");
                    return;
                }
            };
            let Some(last) = batch.last() else { break };
            after.clone_from(&last.key);
            for kv in &batch {
                render.item(kv, &mut out, &mut first);
            }
            if out.len() >= CHUNK && !send(std::mem::take(&mut out)).await {
                warn!(
                    resource = render.rt.plural,
                    "list client stopped reading; cut off"
                );
                return;
            }
        }
        drop(snapshot);
        Render::tail(&mut out);
        let _ = send(out).await;
        // The tail is sent: an empty chunk tells the body it is complete.
        let _ = send(Vec::new()).await;
    });
    Body::from_stream(Chunks {
        rx,
        complete: false,
    })
}

/// A streamed list's chunks; the body fails if the producer stopped before
/// the end (marked by an empty chunk), so a cut list is never taken for a
/// whole one.
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    complete: bool,
}

impl tokio_stream::Stream for Chunks {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        loop {
            return match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(chunk) if chunk.is_empty() => {
                    self.complete = true;
                    continue;
                }
                Some(chunk) => std::task::Poll::Ready(Some(Ok(chunk))),
                None if self.complete => std::task::Poll::Ready(None),
                None => std::task::Poll::Ready(Some(Err(std::io::Error::other(
                    "the list was cut short",
                )))),
            };
        }
    }
}

/// A cursor over JSON text, enough to find `metadata` in a stored object
/// without building it.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string's raw contents (escapes undone only as far as telling that
    /// there were some).
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                _ => self.at += 1,
            }
        }
        let bytes: &'a [u8] = self.bytes;
        let raw = bytes.get(start..self.at)?;
        self.at += 1;
        Some((raw, escaped))
    }

    fn skip_value(&mut self) -> Option<()> {
        self.space();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// Moves to the value of member `name` of the object starting here:
    /// `Some(true)` there, `Some(false)` if the object has no such member,
    /// `None` if the text is not what this cursor can read.
    fn member(&mut self, name: &[u8]) -> Option<bool> {
        self.eat(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            return Some(false);
        }
        loop {
            let (key, escaped) = self.string()?;
            // An escaped key could spell anything: let the parser decide.
            if escaped {
                return None;
            }
            self.eat(b':')?;
            if key == name {
                self.space();
                return Some(true);
            }
            self.skip_value()?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => return Some(false),
                _ => return None,
            }
        }
    }
}

/// Writes the stored object `object` to `out` with
/// `"resourceVersion":"<revision>"` first in its `metadata`, without parsing
/// it into a tree. `false`, with nothing written, if the bytes are not an
/// object with a `metadata` object lacking `resourceVersion`.
pub(crate) fn splice_resource_version(object: &[u8], revision: u64, out: &mut Vec<u8>) -> bool {
    let mut cursor = Cursor {
        bytes: object,
        at: 0,
    };
    if cursor.member(b"metadata") != Some(true) || cursor.peek() != Some(b'{') {
        return false;
    }
    let open = cursor.at;
    let mut inside = Cursor {
        bytes: object,
        at: open,
    };
    if inside.member(b"resourceVersion") != Some(false) {
        return false;
    }
    let mut rest = Cursor {
        bytes: object,
        at: open + 1,
    };
    rest.space();
    let empty = rest.peek() == Some(b'}');
    out.extend_from_slice(&object[..=open]);
    out.extend_from_slice(br#""resourceVersion":""#);
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&object[open + 1..]);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spliced(text: &str) -> Option<Value> {
        let mut out = Vec::new();
        splice_resource_version(text.as_bytes(), 42, &mut out)
            .then(|| serde_json::from_slice(&out).expect("valid JSON"))
    }

    #[test]
    fn resource_version_is_spliced_into_metadata() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"x": "}\"{"}, "managedFields": [{"f": {"a": [1, {"b": null}]}}]}, "spec": {"metadata": 1}});
        let mut expected = obj.clone();
        expected["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(spliced(&obj.to_string()), Some(expected));
        // metadata after other members, with spaces, and empty.
        assert_eq!(
            spliced(r#"{ "a" : [1, "]"] , "b":true, "metadata" : { } }"#),
            Some(json!({"a": [1, "]"], "b": true, "metadata": {"resourceVersion": "42"}}))
        );
    }

    #[test]
    fn odd_shapes_are_left_to_the_parser() {
        for text in [
            r#"{"metadata":{"resourceVersion":"7","name":"a"}}"#,
            r#"{"kind":"Pod"}"#,
            r#"{"metadata":null}"#,
            r#"{"metad\u0061ta":{}}"#,
            r#"[]"#,
            r#"{"metadata":{"name":"unterminated"#,
            "",
        ] {
            assert_eq!(spliced(text), None, "{text}");
        }
    }

    #[test]
    fn tokens_round_trip_relative_to_the_prefix() {
        let prefix = "/registry/core/pods/default/";
        let text = encode_token(prefix, "/registry/core/pods/default/web-9", 77, 3);
        let (token, after) = decode_token(prefix, &text).expect("valid");
        assert_eq!((token.rv, token.id), (77, 3));
        assert_eq!(token.start, "web-9\0");
        assert_eq!(after, "/registry/core/pods/default/web-9");
        for bad in [
            "",
            "!!",
            &URL_SAFE_NO_PAD.encode(br#"{"v":"x","rv":1,"start":"a\u0000"}"#),
        ] {
            assert!(decode_token(prefix, bad).is_err(), "{bad}");
        }
    }
}
