//! The ServiceAccount controller: every active namespace has a `default`
//! ServiceAccount, made again if deleted, as upstream's (pods that name no
//! account run as it, and admission refuses pods whose account is
//! missing).

use std::convert::Infallible;

use serde_json::json;

use super::namespace_key::{self, NamespaceName};
use super::runtime::{self, Reconciler, Trigger};
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// The account every namespace has.
pub const DEFAULT: &str = "default";

/// The reconciler.
pub struct ServiceAccounts {
    objects: Objects,
}

impl ServiceAccounts {
    /// Keeps default accounts through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }
}

impl Reconciler for ServiceAccounts {
    type Key = NamespaceName;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "serviceaccount";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![
            kinds::NAMESPACES.prefix(),
            kinds::SERVICEACCOUNTS.prefix(),
        ])
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<NamespaceName, Infallible>> {
        namespace_key::decode(watch, event, DEFAULT)
    }

    async fn list(&mut self) -> Result<Vec<NamespaceName>, StoreError> {
        let (namespaces, _) = self.objects.list(kinds::NAMESPACES).await?;
        Ok(namespaces
            .iter()
            .map(|n| NamespaceName(meta::name(n).to_string()))
            .collect())
    }

    async fn reconcile(&mut self, key: &NamespaceName) -> Result<runtime::Action, StoreError> {
        let namespace = self.objects.find(kinds::NAMESPACES, None, &key.0).await?;
        if !namespace.as_ref().is_some_and(namespace_key::is_active) {
            return Ok(runtime::Action::await_change());
        }
        let rt = kinds::SERVICEACCOUNTS;
        if self
            .objects
            .find(rt, Some(&key.0), DEFAULT)
            .await?
            .is_none()
        {
            let account = json!({"metadata": {"name": DEFAULT, "namespace": key.0}});
            match self.objects.create(rt, account).await {
                Ok(_) => tracing::info!(namespace = %key.0, "default service account created"),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(runtime::Action::await_change())
    }
}

#[cfg(test)]
mod tests;
