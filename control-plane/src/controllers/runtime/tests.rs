//! The runtime's actor against a scripted reconciler, in paused time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::store::memory::MemoryStore;
use crate::store::{Event, Store};

const PREFIX: &str = "/registry/test/things/";

/// What the fake reconciler saw: each reconcile's key name and time.
type Log = Arc<Mutex<Vec<(String, Duration)>>>;

struct Fake {
    store: Arc<dyn Store>,
    start: Instant,
    log: Log,
    /// Outcomes to give per name, in order; then `await_change`.
    script: HashMap<String, VecDeque<Result<Action, String>>>,
}

impl Reconciler for Fake {
    type Key = ObjectRef;
    type Change = ObjectRef;
    type Error = String;
    const NAME: &'static str = "fake";

    fn watches(&self) -> Result<Vec<String>, String> {
        Ok(vec![PREFIX.to_string()])
    }

    fn decode(_: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, ObjectRef>> {
        let Some(event) = event else {
            return Some(Trigger::Resync);
        };
        let obj: Value = serde_json::from_slice(&event.value).ok()?;
        Some(Trigger::Object(event.kind, ObjectRef::of("Thing", &obj)))
    }

    async fn changes(
        &mut self,
        change: ObjectRef,
        _: &OwnerIndex<ObjectRef>,
    ) -> Result<Vec<ObjectRef>, String> {
        Ok(vec![change])
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, String> {
        let listing = self.store.list(PREFIX).await.map_err(|e| e.to_string())?;
        Ok(listing
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .map(|obj| ObjectRef::of("Thing", &obj))
            .collect())
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, String> {
        let at = self.start.elapsed();
        self.log.lock().expect("log").push((key.name.clone(), at));
        self.script
            .get_mut(&key.name)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Ok(Action::await_change()))
    }
}

struct Env {
    store: Arc<dyn Store>,
    actor: ActorRef<RuntimeMsg<Fake>>,
    log: Log,
}

async fn start(script: Vec<(&str, Vec<Result<Action, String>>)>, existing: &[&str]) -> Env {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for name in existing {
        put(&store, name).await;
    }
    let log = Log::default();
    let fake = Fake {
        store: store.clone(),
        start: Instant::now(),
        log: log.clone(),
        script: script
            .into_iter()
            .map(|(name, outcomes)| (name.to_string(), outcomes.into()))
            .collect(),
    };
    let (actor, _) = Actor::spawn(None, Controller::<Fake>::default(), (store.clone(), fake))
        .await
        .expect("spawn");
    settle().await;
    Env { store, actor, log }
}

async fn put(store: &Arc<dyn Store>, name: &str) {
    let obj = json!({"metadata": {"namespace": "ns", "name": name}});
    store
        .create(&format!("{PREFIX}ns/{name}"), obj.to_string().into_bytes())
        .await
        .expect("create");
}

/// Lets the actor and the watches run (time is paused: no real wait).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn thing(name: &str) -> ObjectRef {
    ObjectRef::new("Thing", "ns", name)
}

impl Env {
    /// The reconciles so far: name and whole seconds since the start.
    fn log(&self) -> Vec<(String, u64)> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|(name, at)| (name.clone(), at.as_secs()))
            .collect()
    }

    fn touch(&self, name: &str) {
        let msg = RuntimeMsg::Watched(Trigger::Object(EventKind::Modified, thing(name)));
        self.actor.cast(msg).expect("cast");
    }
}

fn entries(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

#[tokio::test(start_paused = true)]
async fn repeated_changes_of_a_key_coalesce_into_one_reconcile() {
    let env = start(Vec::new(), &[]).await;
    for name in ["a", "a", "b", "a", "b"] {
        env.touch(name);
    }
    settle().await;
    assert_eq!(env.log(), entries(&[("a", 0), ("b", 0)]));
}

#[tokio::test(start_paused = true)]
async fn watched_objects_are_reconciled_and_resynced_every_30_seconds() {
    let env = start(Vec::new(), &["a"]).await;
    assert_eq!(env.log(), entries(&[("a", 0)]), "the initial list");
    put(&env.store, "b").await;
    settle().await;
    assert_eq!(env.log(), entries(&[("a", 0), ("b", 0)]), "the watch");
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        env.log(),
        entries(&[("a", 0), ("b", 0), ("a", 30), ("b", 30)]),
        "the resync"
    );
}

#[tokio::test(start_paused = true)]
async fn a_requeue_reconciles_the_key_again_after_its_delay() {
    let requeue = Ok(Action::requeue(Duration::from_secs(5)));
    let env = start(vec![("a", vec![requeue.clone(), requeue])], &[]).await;
    env.touch("a");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(env.log(), entries(&[("a", 0), ("a", 5), ("a", 10)]));
}

#[tokio::test(start_paused = true)]
async fn errors_back_off_doubling_and_success_resets_the_back_off() {
    let fail = || Err("boom".to_string());
    let script = vec![(
        "a",
        vec![fail(), fail(), fail(), Ok(Action::await_change()), fail()],
    )];
    let env = start(script, &[]).await;
    env.touch("a");
    // Failures at 0, 2 (+2), 6 (+4); success at 14 (+8).
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        env.log(),
        entries(&[("a", 0), ("a", 2), ("a", 6), ("a", 14)])
    );
    env.touch("a");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = env.log();
    assert_eq!(
        log[4..],
        entries(&[("a", 20), ("a", 22)]),
        "after a success the back-off starts at 2 s again"
    );
}
