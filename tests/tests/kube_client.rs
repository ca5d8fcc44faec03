//! The Rust `kube` client against `skiff-control-plane`: typed create, get,
//! list with a label selector, patch, watch and delete.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Config};
use skiff_tests::control_plane::TestControlPlane;
use tokio_stream::StreamExt;

async fn client(cp: &TestControlPlane) -> Client {
    let url = format!("http://{}", cp.address).parse().expect("url");
    let mut config = Config::new(url);
    config.default_namespace = "default".into();
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn the_kube_client_drives_the_api() {
    let cp = TestControlPlane::start().await;
    let client = client(&cp).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "settings", "labels": {"app": "shop"}},
        "data": {"mode": "fast"}
    }))
    .expect("configmap");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert!(created.metadata.uid.is_some());
    let rv: u64 = created
        .metadata
        .resource_version
        .clone()
        .expect("rv")
        .parse()
        .expect("number");

    let found = cms
        .list(&ListParams::default().labels("app=shop"))
        .await
        .expect("list");
    assert_eq!(found.items.len(), 1);
    assert!(
        cms.list(&ListParams::default().labels("app!=shop"))
            .await
            .expect("list")
            .items
            .is_empty()
    );

    let watch = cms
        .watch(&WatchParams::default(), &rv.to_string())
        .await
        .expect("watch");
    let mut watch = Box::pin(watch);
    let patched = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"mode": "slow"}})),
        )
        .await
        .expect("patch");
    assert_eq!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("mode"))
            .map(String::as_str),
        Some("slow")
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event");
    match event {
        WatchEvent::Modified(cm) => assert_eq!(
            cm.data.and_then(|d| d.get("mode").cloned()).as_deref(),
            Some("slow")
        ),
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let bad: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .expect("deployment");
    match deployments.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422);
            assert!(
                status
                    .message
                    .contains("`selector` does not match template `labels`"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 422, got {other:?}"),
    }
    cms.delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    match cms.get("settings").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}
