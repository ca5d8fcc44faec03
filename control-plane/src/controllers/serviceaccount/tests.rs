use serde_json::json;

use super::*;

#[tokio::test]
async fn every_active_namespace_gets_a_default_account_again_after_a_delete() {
    let objects = Objects::in_memory();
    for (name, phase) in [("lab", "Active"), ("going", "Terminating")] {
        objects
            .create(
                kinds::NAMESPACES,
                json!({"metadata": {"name": name}, "status": {"phase": phase}}),
            )
            .await
            .expect("namespace");
    }
    let mut controller = ServiceAccounts::new(objects.clone());
    let keys = controller.list().await.expect("list");
    assert_eq!(keys.len(), 2);
    for key in &keys {
        controller.reconcile(key).await.expect("reconcile");
    }
    let rt = kinds::SERVICEACCOUNTS;
    let first = objects
        .find(rt, Some("lab"), DEFAULT)
        .await
        .expect("read")
        .expect("made");
    assert!(
        objects
            .find(rt, Some("going"), DEFAULT)
            .await
            .expect("read")
            .is_none(),
        "a terminating namespace gets nothing new"
    );
    // Reconciling again changes nothing; after a delete it is made anew.
    let lab = NamespaceName("lab".into());
    controller.reconcile(&lab).await.expect("again");
    let same = objects.get(rt, Some("lab"), DEFAULT).await.expect("kept");
    assert_eq!(meta::uid(&same), meta::uid(&first));
    objects
        .delete(rt, Some("lab"), DEFAULT)
        .await
        .expect("delete");
    controller.reconcile(&lab).await.expect("remade");
    let again = objects.get(rt, Some("lab"), DEFAULT).await.expect("remade");
    assert_ne!(meta::uid(&again), meta::uid(&first));
}
