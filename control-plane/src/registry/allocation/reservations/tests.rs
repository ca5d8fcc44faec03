use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::registry::allocation::{IpRange, PortRange};
use crate::registry::objects::Objects;

fn ranges() -> ServiceRanges {
    ServiceRanges {
        ips: IpRange::parse("10.0.0.0/24").expect("cidr"),
        node_ports: PortRange::parse("30000-30099").expect("ports"),
    }
}

fn svc(name: &str, spec: Value) -> Value {
    json!({"kind": "Service", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "uid": crate::registry::meta::uuid()},
        "spec": spec})
}

fn encode(obj: &Value) -> Vec<u8> {
    serde_json::to_vec(obj).expect("encode")
}

async fn create(store: &dyn Store, mut obj: Value) -> Result<Value, AllocError> {
    store_service(store, &ranges(), None, &mut obj, encode).await?;
    Ok(obj)
}

async fn stored(store: &dyn Store, name: &str) -> Option<(Value, u64)> {
    let kv = store.get(&SERVICES.key(Some("default"), name)).await.ok()?;
    Some((
        serde_json::from_slice(&kv.value).expect("json"),
        kv.revision,
    ))
}

async fn update(
    store: &dyn Store,
    name: &str,
    change: impl FnOnce(&mut Value),
) -> Result<Value, AllocError> {
    let (old, revision) = stored(store, name).await.expect("stored");
    let mut new = old.clone();
    change(&mut new);
    service::carry_over(&old, &mut new);
    store_service(store, &ranges(), Some((&old, revision)), &mut new, encode).await?;
    Ok(new)
}

async fn reserved_set(store: &dyn Store) -> Vec<Reserved> {
    let mut all = reserved(store).await.expect("list");
    all.sort_by_key(|r| r.key());
    all
}

fn ip_of(obj: &Value) -> Ipv4Addr {
    obj["spec"]["clusterIP"]
        .as_str()
        .expect("ip")
        .parse()
        .expect("ipv4")
}

#[tokio::test]
async fn automatic_addresses_come_from_the_dynamic_band_and_are_reserved() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let created = create(
        store,
        svc("a", json!({"type": "ClusterIP", "ports": [{"port": 80}]})),
    )
    .await
    .expect("create");
    let ip = ip_of(&created);
    let offset = ranges().ips.offset(ip).expect("in range");
    assert!(offset >= 16, "{ip} is in the static band");
    assert_eq!(created["spec"]["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(created["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(created["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(reserved_set(store).await, [Reserved::Ip(ip)]);
    assert_eq!(stored(store, "a").await.expect("a").0, created);
}

#[tokio::test]
async fn an_explicit_address_is_honoured_once() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let first = create(
        store,
        svc(
            "a",
            json!({"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect("create");
    assert_eq!(first["spec"]["clusterIP"], "10.0.0.10");
    let err = create(
        store,
        svc(
            "b",
            json!({"clusterIP": "10.0.0.10", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "spec.clusterIPs: Invalid value: [\"10.0.0.10\"]: failed to allocate IP 10.0.0.10: provided IP is already allocated"
    );
    let err = create(
        store,
        svc(
            "c",
            json!({"clusterIP": "10.1.0.10", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect_err("outside");
    assert!(err.to_string().ends_with("the provided IP (10.1.0.10) is not in the valid range. The range of valid IPs is 10.0.0.0/24"), "{err}");
    assert!(stored(store, "b").await.is_none() && stored(store, "c").await.is_none());
    assert_eq!(
        reserved_set(store).await,
        [Reserved::Ip(Ipv4Addr::new(10, 0, 0, 10))]
    );
}

#[tokio::test]
async fn headless_and_external_name_services_reserve_nothing() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let headless = create(
        store,
        svc(
            "h",
            json!({"clusterIP": "None", "selector": {"a": "b"}, "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect("headless");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    let external = create(
        store,
        svc(
            "e",
            json!({"type": "ExternalName", "externalName": "x.example"}),
        ),
    )
    .await
    .expect("external");
    assert!(external["spec"].get("clusterIP").is_none());
    assert!(reserved_set(store).await.is_empty());
}

#[tokio::test]
async fn node_ports_automatic_explicit_duplicate_and_outside() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let created = create(store, svc("n", json!({"type": "NodePort", "ports": [
        {"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30050},
        {"name": "c", "port": 53, "protocol": "TCP"}, {"name": "d", "port": 53, "protocol": "UDP"}]})))
        .await
        .expect("create");
    let ports: Vec<i64> = (0..4)
        .map(|i| {
            created["spec"]["ports"][i]["nodePort"]
                .as_i64()
                .expect("nodePort")
        })
        .collect();
    assert_eq!(ports[1], 30050);
    assert!(
        ports[0] >= 30016 && ports[2] >= 30016,
        "{ports:?} not in the dynamic band"
    );
    assert_eq!(ports[2], ports[3], "one port, two protocols, one nodePort");
    assert_ne!(ports[0], ports[2]);
    assert_eq!(reserved_set(store).await.len(), 1 + 3);
    let err = create(
        store,
        svc(
            "m",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30050}]}),
        ),
    )
    .await
    .expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "spec.ports[0].nodePort: Invalid value: 30050: provided port is already allocated"
    );
    let err = create(
        store,
        svc(
            "m",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
        ),
    )
    .await
    .expect_err("outside");
    assert_eq!(
        err.to_string(),
        "spec.ports[0].nodePort: Invalid value: 31000: provided port is not in the valid range. The range of valid ports is 30000-30099"
    );
    assert!(stored(store, "m").await.is_none());
    assert_eq!(
        reserved_set(store).await.len(),
        4,
        "a refused Service reserves nothing"
    );
}

#[tokio::test]
async fn local_load_balancers_get_a_health_check_port_that_is_released_with_the_policy() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let lb = create(
        store,
        svc(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect("create");
    let health = lb["spec"]["healthCheckNodePort"]
        .as_i64()
        .expect("health check port");
    let node_port = lb["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("nodePort");
    assert_ne!(health, node_port);
    assert_eq!(reserved_set(store).await.len(), 3);
    let err = create(
        store,
        svc(
            "other",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "healthCheckNodePort": health, "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect_err("taken");
    assert_eq!(
        err.to_string(),
        format!(
            "failed to allocate requested HealthCheck NodePort {health}: provided port is already allocated"
        )
    );
    update(store, "lb", |s| {
        s["spec"]["externalTrafficPolicy"] = json!("Cluster")
    })
    .await
    .expect("to Cluster");
    let health = u16::try_from(health).expect("u16");
    assert!(
        !reserved_set(store)
            .await
            .contains(&Reserved::NodePort(health))
    );
}

#[tokio::test]
async fn type_changes_and_deletes_release_and_the_values_can_be_taken_again() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    create(
        store,
        svc(
            "n",
            json!({"type": "NodePort", "clusterIP": "10.0.0.20",
        "ports": [{"port": 80, "nodePort": 30060}]}),
        ),
    )
    .await
    .expect("create");
    let changed = update(store, "n", |s| s["spec"]["type"] = json!("ClusterIP"))
        .await
        .expect("to ClusterIP");
    assert!(changed["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(
        reserved_set(store).await,
        [Reserved::Ip(Ipv4Addr::new(10, 0, 0, 20))]
    );
    create(
        store,
        svc(
            "o",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30060}]}),
        ),
    )
    .await
    .expect("the released port is free");
    let external = update(store, "n", |s| {
        s["spec"]["type"] = json!("ExternalName");
        s["spec"]["externalName"] = json!("x.example");
    })
    .await
    .expect("to ExternalName");
    assert!(external["spec"].get("clusterIP").is_none());
    assert!(
        !reserved_set(store)
            .await
            .contains(&Reserved::Ip(Ipv4Addr::new(10, 0, 0, 20)))
    );
    let back = update(store, "n", |s| {
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"] = json!([{"port": 80}]);
    })
    .await
    .expect("back to NodePort");
    assert!(ranges().ips.offset(ip_of(&back)).is_some());
    assert!(back["spec"]["ports"][0]["nodePort"].as_i64().is_some());

    let (o, _) = stored(store, "o").await.expect("o");
    store
        .delete(&SERVICES.key(Some("default"), "o"), None)
        .await
        .expect("delete");
    release(store, &o).await;
    create(
        store,
        svc(
            "p",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30060}]}),
        ),
    )
    .await
    .expect("the deleted Service's port is free");
}

#[tokio::test]
async fn stale_reservations_are_taken_over_and_repaired() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let gone = create(
        store,
        svc(
            "gone",
            json!({"type": "NodePort", "clusterIP": "10.0.0.30",
        "ports": [{"port": 80, "nodePort": 30070}]}),
        ),
    )
    .await
    .expect("create");
    // A crash after the delete, before the release.
    store
        .delete(&SERVICES.key(Some("default"), "gone"), None)
        .await
        .expect("delete");
    assert_eq!(reserved_set(store).await.len(), 2);
    create(
        store,
        svc(
            "again",
            json!({"clusterIP": "10.0.0.30", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect("a stale address is taken over");
    assert_eq!(
        repair(store).await.expect("repair").released,
        1,
        "the nodePort of {gone}"
    );
    assert_eq!(
        reserved_set(store).await,
        [Reserved::Ip(Ipv4Addr::new(10, 0, 0, 30))]
    );
    assert_eq!(
        repair(store).await.expect("repair"),
        Repaired::default(),
        "the address is in force"
    );
    // A Service stored without reservations (before allocation existed)
    // has its values adopted, so nobody else gets them.
    let old = svc(
        "old",
        json!({"type": "NodePort", "clusterIP": "10.0.0.40", "ports": [{"port": 80, "nodePort": 30080}]}),
    );
    store
        .create(&SERVICES.key(Some("default"), "old"), encode(&old))
        .await
        .expect("store");
    assert_eq!(repair(store).await.expect("repair").adopted, 2);
    let err = create(
        store,
        svc(
            "new",
            json!({"clusterIP": "10.0.0.40", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect_err("adopted");
    assert!(
        matches!(
            err,
            AllocError::Ip {
                refusal: Refusal::IpAllocated,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_full_range_takes_back_stale_reservations_before_giving_up() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    let tiny = ServiceRanges {
        ips: IpRange::parse("10.0.0.0/30").expect("two addresses"),
        node_ports: PortRange::parse("30000-30001").expect("ports"),
    };
    let mut names = Vec::new();
    for i in 0..2 {
        let mut obj = svc(&format!("s{i}"), json!({"ports": [{"port": 80}]}));
        store_service(store, &tiny, None, &mut obj, encode)
            .await
            .expect("create");
        names.push(obj);
    }
    let mut third = svc("third", json!({"ports": [{"port": 80}]}));
    let err = store_service(store, &tiny, None, &mut third.clone(), encode)
        .await
        .expect_err("full");
    assert_eq!(err, AllocError::IpRangeFull);
    assert_eq!(
        err.clone().into_api(SERVICES, "third").message,
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
    // Deleted without its release (a crash): the next create takes it back.
    store
        .delete(&SERVICES.key(Some("default"), "s0"), None)
        .await
        .expect("delete");
    store_service(store, &tiny, None, &mut third, encode)
        .await
        .expect("the stale address is taken back");
    assert_eq!(third["spec"]["clusterIP"], names[0]["spec"]["clusterIP"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_values() {
    let objects = Objects::in_memory();
    let store = objects.store().clone();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                create(
                    store.as_ref(),
                    svc(
                        &format!("s{i}"),
                        json!({"type": "NodePort", "ports": [{"port": 80}]}),
                    ),
                )
                .await
            })
        })
        .collect();
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for task in tasks {
        let created = task.await.expect("join").expect("create");
        assert!(ips.insert(ip_of(&created)), "address given twice");
        assert!(
            ports.insert(
                created["spec"]["ports"][0]["nodePort"]
                    .as_i64()
                    .expect("port")
            ),
            "port given twice"
        );
    }
    assert_eq!(reserved_set(store.as_ref()).await.len(), 80);
    // Explicit values raced for: exactly one winner.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                create(
                    store.as_ref(),
                    svc(
                        &format!("x{i}"),
                        json!({"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}),
                    ),
                )
                .await
                .is_ok()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.expect("join"));
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn reservations_survive_a_restart_of_the_sqlite_store() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.sqlite");
    let ip = {
        let store: Arc<dyn Store> =
            Arc::new(crate::store::sqlite::SqliteStore::open(&path).expect("open"));
        let created = create(
            store.as_ref(),
            svc(
                "a",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
            ),
        )
        .await
        .expect("create");
        ip_of(&created)
    };
    let store: Arc<dyn Store> =
        Arc::new(crate::store::sqlite::SqliteStore::open(&path).expect("reopen"));
    assert_eq!(
        repair(store.as_ref()).await.expect("repair"),
        Repaired::default()
    );
    let err = create(
        store.as_ref(),
        svc(
            "b",
            json!({"clusterIP": ip.to_string(), "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect_err("still allocated");
    assert!(
        matches!(
            err,
            AllocError::Ip {
                refusal: Refusal::IpAllocated,
                ..
            }
        ),
        "{err}"
    );
    let err = create(
        store.as_ref(),
        svc(
            "c",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
        ),
    )
    .await
    .expect_err("still allocated");
    assert!(
        matches!(
            err,
            AllocError::NodePort {
                refusal: Refusal::PortAllocated,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_kubernetes_service_takes_the_first_address_once() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    super::super::kubernetes::ensure(store, &ranges(), 6443)
        .await
        .expect("ensure");
    super::super::kubernetes::ensure(store, &ranges(), 6443)
        .await
        .expect("again");
    let (svc, _) = stored(store, "kubernetes").await.expect("stored");
    assert_eq!(svc["spec"]["clusterIP"], "10.0.0.1");
    assert_eq!(
        svc["spec"]["ports"][0],
        json!({"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443})
    );
    assert_eq!(
        reserved_set(store).await,
        [Reserved::Ip(Ipv4Addr::new(10, 0, 0, 1))]
    );
}

#[tokio::test]
async fn automatic_allocation_never_takes_the_dns_address() {
    let objects = Objects::in_memory();
    let store = objects.store().as_ref();
    // 14 addresses, no static band: every one is a candidate but the tenth.
    let small = ServiceRanges {
        ips: IpRange::parse("10.0.0.0/28").expect("cidr"),
        node_ports: PortRange::parse("30000-30099").expect("ports"),
    };
    let mut got = Vec::new();
    for i in 0..13 {
        let mut obj = svc(&format!("s{i}"), json!({"ports": [{"port": 80}]}));
        store_service(store, &small, None, &mut obj, encode)
            .await
            .expect("create");
        got.push(
            obj["spec"]["clusterIP"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(!got.contains(&"10.0.0.10".to_string()), "{got:?}");
    let mut last = svc("last", json!({"ports": [{"port": 80}]}));
    let err = store_service(store, &small, None, &mut last, encode)
        .await
        .expect_err("only the DNS address is left");
    assert_eq!(err, AllocError::IpRangeFull);
    // Asked for by name, it can be had (kube-dns does).
    let mut dns = svc(
        "kube-dns",
        json!({"clusterIP": "10.0.0.10", "ports": [{"port": 53}]}),
    );
    store_service(store, &small, None, &mut dns, encode)
        .await
        .expect("explicit");
}
