//! The behaviour every [`Store`] must have, as a suite run against each
//! implementation (`run_all`). Public so other crates' stores (etcd, later)
//! can be checked the same way.

use std::future::Future;
use std::time::Duration;

use super::{EventKind, KeyValue, Store, StoreError, Write};

async fn next(w: &mut tokio::sync::mpsc::Receiver<super::Event>) -> super::Event {
    tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .expect("event within 5s")
        .expect("watch open")
}

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S: Store, F: Future<Output = S>>(mut make: impl FnMut() -> F) {
    crud_and_revisions(&make().await).await;
    compare_and_swap(&make().await).await;
    list_is_prefix_scoped_and_consistent(&make().await).await;
    snapshots_read_one_revision_in_batches(&make().await).await;
    snapshots_outlive_repeated_changes(&make().await).await;
    watch_replays_then_streams(&make().await).await;
    watch_from_now_sees_only_new_changes(&make().await).await;
    write_all_is_all_or_nothing(&make().await).await;
}

/// Create, get, update, delete, and a global revision that only grows.
pub async fn crud_and_revisions(s: &impl Store) {
    assert_eq!(s.revision().await.expect("rev"), 0);
    let r1 = s
        .create("/registry/pods/default/a", b"a1".to_vec())
        .await
        .expect("create");
    let r2 = s
        .create("/registry/pods/default/b", b"b1".to_vec())
        .await
        .expect("create");
    assert!(r2 > r1);
    assert_eq!(
        s.create("/registry/pods/default/a", b"again".to_vec())
            .await,
        Err(StoreError::AlreadyExists("/registry/pods/default/a".into()))
    );
    let got = s.get("/registry/pods/default/a").await.expect("get");
    assert_eq!((got.value.as_slice(), got.revision), (b"a1".as_slice(), r1));
    let r3 = s
        .update("/registry/pods/default/a", r1, b"a2".to_vec())
        .await
        .expect("update");
    assert!(r3 > r2);
    let (r4, last) = s
        .delete("/registry/pods/default/a", None)
        .await
        .expect("delete");
    assert!(r4 > r3);
    assert_eq!(last, b"a2");
    assert!(matches!(
        s.get("/registry/pods/default/a").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.delete("/registry/pods/default/a", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.revision().await.expect("rev"), r4);
}

/// Updates and deletes with a stale revision fail and change nothing.
pub async fn compare_and_swap(s: &impl Store) {
    let r1 = s.create("/k", b"v1".to_vec()).await.expect("create");
    let r2 = s.update("/k", r1, b"v2".to_vec()).await.expect("update");
    let stale = s.update("/k", r1, b"lost".to_vec()).await;
    assert_eq!(
        stale,
        Err(StoreError::Conflict {
            key: "/k".into(),
            expected: r1,
            actual: r2
        })
    );
    assert!(matches!(
        s.delete("/k", Some(r1)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.get("/k").await.expect("get").value, b"v2");
    assert!(matches!(
        s.update("/missing", 1, b"x".to_vec()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Listing returns exactly the keys under a prefix, ordered, with the revision.
pub async fn list_is_prefix_scoped_and_consistent(s: &impl Store) {
    for key in [
        "/r/pods/ns1/a",
        "/r/pods/ns1/b",
        "/r/pods/ns2/a",
        "/r/podsx/ns1/a",
        "/r/services/ns1/a",
    ] {
        s.create(key, key.as_bytes().to_vec())
            .await
            .expect("create");
    }
    let all = s.list("/r/pods/").await.expect("list");
    let keys: Vec<&str> = all.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/ns1/a", "/r/pods/ns1/b", "/r/pods/ns2/a"]);
    assert_eq!(all.revision, s.revision().await.expect("rev"));
    assert_eq!(s.list("/r/pods/ns1/").await.expect("list").items.len(), 2);
    assert!(s.list("/nothing/").await.expect("list").items.is_empty());
}

/// A snapshot reads its prefix in key order, batch by batch, and keeps
/// showing the revision it was taken at while writes go on.
pub async fn snapshots_read_one_revision_in_batches(s: &impl Store) {
    for i in 0..5 {
        s.create(&format!("/s/pods/p{i}"), vec![b'0' + i])
            .await
            .expect("create");
    }
    s.create("/s/podsx/a", b"x".to_vec()).await.expect("create");
    s.create("/s/a", b"a".to_vec()).await.expect("create");
    let mut snap = s.snapshot("/s/pods/").await.expect("snapshot");
    let taken = s.revision().await.expect("rev");
    assert_eq!(snap.revision(), taken);
    assert_eq!(snap.prefix(), "/s/pods/");
    let first = snap.next("", 2).await.expect("batch");
    let keys: Vec<&str> = first.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/s/pods/p0", "/s/pods/p1"]);
    // Writes after the snapshot: none of them shows in it.
    let p2 = s.get("/s/pods/p2").await.expect("get");
    s.update("/s/pods/p2", p2.revision, b"changed".to_vec())
        .await
        .expect("update");
    s.delete("/s/pods/p3", None).await.expect("delete");
    s.create("/s/pods/p9", b"9".to_vec()).await.expect("create");
    let rest = snap.next("/s/pods/p1", 10).await.expect("batch");
    let seen: Vec<(&str, &[u8], u64)> = rest
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_slice(), kv.revision))
        .collect();
    assert_eq!(
        seen,
        [
            ("/s/pods/p2", b"2".as_slice(), p2.revision),
            ("/s/pods/p3", b"3".as_slice(), seen[1].2),
            ("/s/pods/p4", b"4".as_slice(), seen[2].2),
        ]
    );
    assert!(seen.iter().all(|(_, _, r)| *r <= taken));
    assert!(snap.next("/s/pods/p4", 10).await.expect("end").is_empty());
    drop(snap);
    let mut fresh = s.snapshot("/s/pods/").await.expect("snapshot");
    let now: Vec<String> = fresh
        .next("", 100)
        .await
        .expect("batch")
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(
        now,
        [
            "/s/pods/p0",
            "/s/pods/p1",
            "/s/pods/p2",
            "/s/pods/p4",
            "/s/pods/p9"
        ]
    );
}

/// A snapshot keeps its revision's versions through several updates of a
/// key, batched writes, a delete and re-create, and other snapshots.
pub async fn snapshots_outlive_repeated_changes(s: &impl Store) {
    let a = s.create("/k/a", b"a0".to_vec()).await.expect("create");
    let b = s.create("/k/b", b"b0".to_vec()).await.expect("create");
    let mut old = s.snapshot("/k/").await.expect("snapshot");
    let a1 = s.update("/k/a", a, b"a1".to_vec()).await.expect("update");
    let mut mid = s.snapshot("/k/").await.expect("snapshot");
    let revs = s
        .write_all(vec![
            Write::Update {
                key: "/k/a".into(),
                expected: a1,
                value: b"a2".to_vec(),
            },
            Write::Create {
                key: "/k/c".into(),
                value: b"c0".to_vec(),
            },
        ])
        .await
        .expect("write_all");
    s.delete("/k/b", Some(b)).await.expect("delete");
    s.create("/k/b", b"b1".to_vec()).await.expect("re-create");
    s.update("/k/a", revs[0], b"a3".to_vec())
        .await
        .expect("update");
    let values = |kvs: Vec<KeyValue>| -> Vec<(String, Vec<u8>)> {
        kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.as_bytes().to_vec());
    assert_eq!(
        values(mid.next("", 10).await.expect("batch")),
        [pair("/k/a", "a1"), pair("/k/b", "b0")]
    );
    drop(mid);
    s.update("/k/c", revs[1], b"c1".to_vec())
        .await
        .expect("update");
    assert_eq!(
        values(old.next("", 1).await.expect("batch")),
        [pair("/k/a", "a0")]
    );
    assert_eq!(
        values(old.next("/k/a", 10).await.expect("batch")),
        [pair("/k/b", "b0")]
    );
    drop(old);
    s.update("/k/c", revs[1] + 5, b"c2".to_vec()).await.ok();
    let mut now = s.snapshot("/k/").await.expect("snapshot");
    assert_eq!(
        values(now.next("", 10).await.expect("batch")),
        [pair("/k/a", "a3"), pair("/k/b", "b1"), pair("/k/c", "c1")]
    );
}

/// A watch from a past revision replays exactly the later changes under its
/// prefix, then streams new ones.
pub async fn watch_replays_then_streams(s: &impl Store) {
    let r1 = s.create("/w/a", b"1".to_vec()).await.expect("create");
    s.update("/w/a", r1, b"2".to_vec()).await.expect("update");
    s.create("/other/x", b"x".to_vec()).await.expect("create");
    s.delete("/w/a", None).await.expect("delete");
    let mut w = s.watch("/w/", r1).await.expect("watch");
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, &e.value[..]),
        (EventKind::Modified, b"2".as_slice())
    );
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, &e.value[..]),
        (EventKind::Deleted, b"2".as_slice())
    );
    let r = s.create("/w/b", b"3".to_vec()).await.expect("create");
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, e.key.as_str(), e.revision),
        (EventKind::Added, "/w/b", r)
    );
    s.create("/other/y", b"y".to_vec()).await.expect("create");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), w.recv())
            .await
            .is_err(),
        "no events from other prefixes"
    );
}

/// A watch from the current revision sees only what follows.
pub async fn watch_from_now_sees_only_new_changes(s: &impl Store) {
    s.create("/n/old", b"o".to_vec()).await.expect("create");
    let now = s.revision().await.expect("rev");
    let mut w = s.watch("/n/", now).await.expect("watch");
    let r = s.create("/n/new", b"n".to_vec()).await.expect("create");
    let e = next(&mut w).await;
    assert_eq!((e.key.as_str(), e.revision), ("/n/new", r));
}

/// A batch commits whole, at consecutive revisions seen by watchers in
/// order, or not at all.
pub async fn write_all_is_all_or_nothing(s: &impl Store) {
    let r1 = s.create("/b/a", b"a1".to_vec()).await.expect("create");
    let before = s.revision().await.expect("rev");
    let mut w = s.watch("/b/", before).await.expect("watch");
    let revs = s
        .write_all(vec![
            Write::Update {
                key: "/b/a".into(),
                expected: r1,
                value: b"a2".to_vec(),
            },
            Write::Create {
                key: "/b/c".into(),
                value: b"c1".to_vec(),
            },
            // Sees the create just before it.
            Write::Update {
                key: "/b/c".into(),
                expected: before + 2,
                value: b"c2".to_vec(),
            },
        ])
        .await
        .expect("batch");
    assert_eq!(revs, [before + 1, before + 2, before + 3]);
    for (rev, kind, value) in [
        (before + 1, EventKind::Modified, b"a2"),
        (before + 2, EventKind::Added, b"c1"),
        (before + 3, EventKind::Modified, b"c2"),
    ] {
        let e = next(&mut w).await;
        assert_eq!(
            (e.revision, e.kind, &e.value[..]),
            (rev, kind, value.as_slice())
        );
    }
    // One stale write fails the batch and nothing of it is written.
    let failed = s
        .write_all(vec![
            Write::Create {
                key: "/b/d".into(),
                value: b"d".to_vec(),
            },
            Write::Update {
                key: "/b/a".into(),
                expected: r1,
                value: b"lost".to_vec(),
            },
        ])
        .await;
    assert!(
        matches!(failed, Err(StoreError::Conflict { .. })),
        "{failed:?}"
    );
    assert!(matches!(s.get("/b/d").await, Err(StoreError::NotFound(_))));
    assert_eq!(s.get("/b/a").await.expect("get").value, b"a2");
    assert_eq!(s.revision().await.expect("rev"), before + 3);
    let exists = s
        .write_all(vec![Write::Create {
            key: "/b/c".into(),
            value: b"again".to_vec(),
        }])
        .await;
    assert_eq!(exists, Err(StoreError::AlreadyExists("/b/c".into())));
    assert_eq!(s.write_all(Vec::new()).await, Ok(Vec::new()));
}
