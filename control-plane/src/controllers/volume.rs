//! The PersistentVolume controller: it keeps the default StorageClass and
//! does what upstream's PV controller does once a claim goes: its volume
//! is `Released`, and deleted when its reclaim policy is `Delete`. The
//! storage model itself (classes, provisioning, mounts) is
//! [`crate::volumes`].

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{object_of, watch_for};
use crate::meta::{self, str_at};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::EventKind;
use crate::volumes::{VolumeError, ensure_default_class};

const COMPONENT: &str = "persistentvolume-controller";

/// Messages of the volume actor.
#[derive(Debug)]
pub enum VolumeMsg {
    /// A claim was added (`Added`) or deleted (`Deleted`: its last state).
    Claim(EventKind, Box<Value>),
    /// Look at every volume (after a (re)list, and now and then).
    Resync,
}

/// The volume actor.
pub struct VolumeController;

/// Its state.
pub struct VolumeState {
    objects: Objects,
}

impl VolumeState {
    /// A new claim of a class that waits for its first consumer says so,
    /// as upstream's PV controller does.
    async fn claim_added(&self, claim: &Value) -> Result<(), VolumeError> {
        if str_at(claim, "/spec/volumeName").is_some_and(|v| !v.is_empty()) {
            return Ok(());
        }
        let Some(class) = str_at(claim, "/spec/storageClassName").filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        let Some(class) = self
            .objects
            .find(kinds::STORAGECLASSES, None, class)
            .await?
        else {
            return Ok(());
        };
        if class.get("volumeBindingMode").and_then(Value::as_str) == Some("WaitForFirstConsumer") {
            self.objects
                .event(
                    claim,
                    false,
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                    COMPONENT,
                )
                .await;
        }
        Ok(())
    }

    /// Volumes whose claim is gone are released, and deleted if their
    /// policy says so.
    async fn reclaim(&self) -> Result<(), VolumeError> {
        let volumes = kinds::PERSISTENTVOLUMES;
        let claims = kinds::PERSISTENTVOLUMECLAIMS;
        let (all, _) = self.objects.list(volumes).await?;
        for pv in all {
            // Without a uid the volume is pre-bound to a claim to come.
            let Some(claim_ref) = pv
                .pointer("/spec/claimRef")
                .filter(|c| c.get("uid").is_some_and(Value::is_string))
            else {
                continue;
            };
            let (namespace, name) = (
                str_at(claim_ref, "/namespace").unwrap_or("default"),
                str_at(claim_ref, "/name").unwrap_or_default(),
            );
            let claim = self.objects.find(claims, Some(namespace), name).await?;
            let present = claim
                .is_some_and(|c| meta::uid(&c) == str_at(claim_ref, "/uid").unwrap_or_default());
            if present {
                continue;
            }
            let pv_name = str_at(&pv, "/metadata/name").unwrap_or_default();
            if str_at(&pv, "/spec/persistentVolumeReclaimPolicy") == Some("Delete") {
                info!(volume = %pv_name, claim = %format!("{namespace}/{name}"), "claim gone; deleting its volume");
                self.objects.delete(volumes, None, pv_name).await?;
            } else if str_at(&pv, "/status/phase") != Some("Released") {
                self.objects
                    .update(volumes, None, pv_name, |v| {
                        if v["status"]["phase"] == "Released" {
                            return false;
                        }
                        v["status"]["phase"] = json!("Released");
                        true
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

impl Actor for VolumeController {
    type Msg = VolumeMsg;
    type State = VolumeState;
    type Arguments = Objects;

    async fn pre_start(
        &self,
        myself: ActorRef<VolumeMsg>,
        objects: Objects,
    ) -> Result<VolumeState, ActorProcessingErr> {
        // Not fatal: without it claims just need a class of their own.
        if let Err(e) = ensure_default_class(&objects).await {
            warn!(error = %e, "cannot create the default storage class");
        }
        watch_for(
            &objects,
            kinds::PERSISTENTVOLUMECLAIMS.prefix(),
            &myself,
            || VolumeMsg::Resync,
            |e| match e.kind {
                EventKind::Modified => None,
                kind => object_of(&e).map(|claim| VolumeMsg::Claim(kind, Box::new(claim))),
            },
        );
        // A safety net: volumes of claims deleted while the control plane
        // was down, or whose deletion event was missed.
        myself.send_interval(Duration::from_secs(30), || VolumeMsg::Resync);
        Ok(VolumeState { objects })
    }

    async fn handle(
        &self,
        _myself: ActorRef<VolumeMsg>,
        msg: VolumeMsg,
        state: &mut VolumeState,
    ) -> Result<(), ActorProcessingErr> {
        let result = match msg {
            VolumeMsg::Claim(EventKind::Added, claim) => state.claim_added(&claim).await,
            VolumeMsg::Claim(_, _) | VolumeMsg::Resync => state.reclaim().await,
        };
        // Level-triggered: the next resync tries again.
        if let Err(e) = result {
            warn!(error = %e, "volume sync failed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::provision;
    use crate::volumes::testing::{claim, store_with_default_class};

    #[tokio::test]
    async fn volumes_of_deleted_claims_are_reclaimed_by_policy() {
        let objects = store_with_default_class().await;
        ensure_default_class(&objects).await.expect("idempotent");
        let claims = kinds::PERSISTENTVOLUMECLAIMS;
        let volumes = kinds::PERSISTENTVOLUMES;
        for name in ["a", "b"] {
            claim(
                &objects,
                name,
                json!({"resources": {"requests": {"storage": "1Gi"}}}),
            )
            .await;
            provision::provision(&objects, "default", name, "n1")
                .await
                .expect("provision");
        }
        let (pvs, _) = objects.list(volumes).await.expect("list");
        let retained = pvs
            .iter()
            .find(|v| v["spec"]["claimRef"]["name"] == "b")
            .and_then(|v| v["metadata"]["name"].as_str())
            .expect("b's volume")
            .to_string();
        objects
            .update(volumes, None, &retained, |v| {
                v["spec"]["persistentVolumeReclaimPolicy"] = json!("Retain");
                true
            })
            .await
            .expect("retain");
        let state = VolumeState {
            objects: objects.clone(),
        };
        state.reclaim().await.expect("nothing to do");
        assert_eq!(objects.list(volumes).await.expect("list").0.len(), 2);
        objects
            .delete(claims, Some("default"), "a")
            .await
            .expect("delete a");
        objects
            .delete(claims, Some("default"), "b")
            .await
            .expect("delete b");
        state.reclaim().await.expect("reclaim");
        let (left, _) = objects.list(volumes).await.expect("list");
        assert_eq!(left.len(), 1, "a's volume (Delete) is gone");
        assert_eq!(left[0]["metadata"]["name"], retained.as_str());
        assert_eq!(left[0]["status"]["phase"], "Released");
    }
}
