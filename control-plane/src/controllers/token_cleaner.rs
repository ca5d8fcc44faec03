//! The bootstrap token cleaner, as upstream's `tokencleaner`: a bootstrap
//! token Secret (`kube-system`, type `bootstrap.kubernetes.io/token`)
//! whose `expiration` has passed is deleted; one that expires later is
//! reconciled again at its expiry. A token without `expiration` is kept;
//! one whose `expiration` does not parse counts as expired, as upstream's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use skiff_pki::token::{NAMESPACE, SECRET_TYPE, keys};
use tracing::info;

use super::metadata_of;
use super::runtime::{self, Key, ObjectRef, Reconciler, Trigger};
use crate::clock::{SharedClock, SystemClock};
use crate::meta;
use crate::registry::deletion::DeleteOptions;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// The reconciler.
pub struct TokenCleaner {
    objects: Objects,
    clock: SharedClock,
}

impl TokenCleaner {
    /// Cleans bootstrap tokens of `objects` by the system clock.
    pub fn new(objects: Objects) -> Self {
        Self::with_clock(objects, Arc::new(SystemClock))
    }

    /// Cleans by `clock`.
    pub fn with_clock(objects: Objects, clock: SharedClock) -> Self {
        Self { objects, clock }
    }
}

/// When a bootstrap token Secret expires: `None` if it never does, now's
/// `Some(Duration::ZERO)` if it has (or its `expiration` is unreadable),
/// else how long it has left.
pub fn time_left(secret: &Value, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let encoded = secret
        .pointer(&format!("/data/{}", keys::EXPIRATION))
        .and_then(Value::as_str)?;
    let text = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    if text.as_deref() == Some("") {
        return None;
    }
    let Some(at) = text.and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok()) else {
        return Some(Duration::ZERO);
    };
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

fn is_bootstrap_token(secret: &Value) -> bool {
    secret.get("type").and_then(Value::as_str) == Some(SECRET_TYPE)
}

impl Reconciler for TokenCleaner {
    type Key = ObjectRef;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "tokencleaner";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![format!("{}{NAMESPACE}/", kinds::SECRETS.prefix())])
    }

    fn decode(_watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, Infallible>> {
        let Some(event) = event else {
            return Some(Trigger::Resync);
        };
        let metadata = metadata_of(event)?;
        Some(Trigger::Object(
            event.kind,
            ObjectRef::of(kinds::SECRETS.kind, &metadata),
        ))
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, StoreError> {
        let secrets = super::namespace_objects(&self.objects, kinds::SECRETS, NAMESPACE).await?;
        Ok(secrets
            .iter()
            .filter(|s| is_bootstrap_token(s))
            .map(|s| ObjectRef::of(kinds::SECRETS.kind, s))
            .collect())
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<runtime::Action, StoreError> {
        let rt = kinds::SECRETS;
        let Some(secret) = self
            .objects
            .find(rt, Some(&key.namespace), &key.name)
            .await?
        else {
            return Ok(runtime::Action::await_change());
        };
        if !is_bootstrap_token(&secret) {
            return Ok(runtime::Action::await_change());
        }
        match time_left(&secret, self.clock.now()) {
            None => Ok(runtime::Action::await_change()),
            Some(left) if left.is_zero() => {
                info!(secret = %key.object_ref(), "deleting expired bootstrap token");
                // Only this Secret: one made again under its name is another token.
                let options = DeleteOptions {
                    uid: Some(meta::uid(&secret).to_string()),
                    grace_period_seconds: Some(0),
                    ..DeleteOptions::default()
                };
                self.objects
                    .delete_with(rt, Some(&key.namespace), &key.name, &options)
                    .await?;
                Ok(runtime::Action::await_change())
            }
            Some(left) => Ok(runtime::Action::requeue(left)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::FakeClock;

    const START: &str = "2026-01-01T00:00:00Z";

    fn secret(name: &str, type_: &str, expiration: Option<&str>) -> Value {
        let mut data = json!({"token-id": STANDARD.encode("abcdef")});
        if let Some(e) = expiration {
            data[keys::EXPIRATION] = json!(STANDARD.encode(e));
        }
        json!({"metadata": {"name": name, "namespace": NAMESPACE},
            "type": type_, "data": data})
    }

    async fn setup() -> (TokenCleaner, Objects, Arc<FakeClock>) {
        let objects = Objects::in_memory();
        let clock = Arc::new(FakeClock::new(START.parse().expect("time")));
        let cleaner = TokenCleaner::with_clock(objects.clone(), clock.clone());
        (cleaner, objects, clock)
    }

    fn key(name: &str) -> ObjectRef {
        ObjectRef::new("Secret", NAMESPACE, name)
    }

    async fn exists(objects: &Objects, name: &str) -> bool {
        objects
            .find(kinds::SECRETS, Some(NAMESPACE), name)
            .await
            .expect("find")
            .is_some()
    }

    #[tokio::test]
    async fn an_expiring_token_is_requeued_at_its_expiry_then_deleted() {
        let (mut cleaner, objects, clock) = setup().await;
        objects
            .create(
                kinds::SECRETS,
                secret(
                    "bootstrap-token-abcdef",
                    SECRET_TYPE,
                    Some("2026-01-01T00:01:30Z"),
                ),
            )
            .await
            .expect("secret");
        let k = key("bootstrap-token-abcdef");
        let action = cleaner.reconcile(&k).await.expect("reconcile");
        assert_eq!(action.requeue_after(), Some(Duration::from_secs(90)));
        assert!(exists(&objects, "bootstrap-token-abcdef").await);
        clock.advance(chrono::Duration::seconds(89));
        let action = cleaner.reconcile(&k).await.expect("reconcile");
        assert_eq!(action.requeue_after(), Some(Duration::from_secs(1)));
        clock.advance(chrono::Duration::seconds(1));
        let action = cleaner.reconcile(&k).await.expect("reconcile");
        assert_eq!(action.requeue_after(), None);
        assert!(!exists(&objects, "bootstrap-token-abcdef").await);
        // Gone already: nothing to do.
        cleaner.reconcile(&k).await.expect("reconcile a gone one");
    }

    #[tokio::test]
    async fn tokens_without_expiration_and_other_secrets_stay() {
        let (mut cleaner, objects, clock) = setup().await;
        for s in [
            secret("bootstrap-token-forevr", SECRET_TYPE, None),
            secret("bootstrap-token-blankx", SECRET_TYPE, Some("")),
            secret("opaque", "Opaque", Some("2020-01-01T00:00:00Z")),
        ] {
            objects.create(kinds::SECRETS, s).await.expect("secret");
        }
        clock.advance(chrono::Duration::days(3650));
        for name in ["bootstrap-token-forevr", "bootstrap-token-blankx", "opaque"] {
            let action = cleaner.reconcile(&key(name)).await.expect("reconcile");
            assert_eq!(action.requeue_after(), None, "{name}");
            assert!(exists(&objects, name).await, "{name}");
        }
        let listed = cleaner.list().await.expect("list");
        assert_eq!(listed.len(), 2, "{listed:?}");
    }

    #[tokio::test]
    async fn an_unparseable_expiration_counts_as_expired() {
        let (mut cleaner, objects, _) = setup().await;
        objects
            .create(
                kinds::SECRETS,
                secret("bootstrap-token-garbag", SECRET_TYPE, Some("next tuesday")),
            )
            .await
            .expect("secret");
        cleaner
            .reconcile(&key("bootstrap-token-garbag"))
            .await
            .expect("reconcile");
        assert!(!exists(&objects, "bootstrap-token-garbag").await);
    }

    #[test]
    fn time_left_rounds_nothing_away() {
        let now: chrono::DateTime<chrono::Utc> = START.parse().expect("time");
        let s = secret("x", SECRET_TYPE, Some("2026-01-01T00:00:00.250Z"));
        assert_eq!(time_left(&s, now), Some(Duration::from_millis(250)));
        let past = secret("x", SECRET_TYPE, Some("2025-12-31T23:59:59Z"));
        assert_eq!(time_left(&past, now), Some(Duration::ZERO));
    }
}
