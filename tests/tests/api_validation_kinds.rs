//! Kinds whose rules are their own (Nodes, Namespaces, Leases, volumes and
//! classes, Endpoints and EndpointSlices, ControllerRevisions), written to
//! a real `skiff-control-plane`: invalid objects are refused with
//! upstream's code and wording and nothing is stored or changed, while the
//! objects kubectl users write are accepted.

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};

const NODES: &str = "/api/v1/nodes";
const NAMESPACES: &str = "/api/v1/namespaces";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
const ACCOUNTS: &str = "/api/v1/namespaces/default/serviceaccounts";
const VOLUMES: &str = "/api/v1/persistentvolumes";
const CLASSES: &str = "/apis/storage.k8s.io/v1/storageclasses";
const ENDPOINTS: &str = "/api/v1/namespaces/default/endpoints";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const REVISIONS: &str = "/apis/apps/v1/namespaces/default/controllerrevisions";

fn send(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, text) = http_json(method, &cp.address, path, &body).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(cp: &TestControlPlane, collection: &str, name: &str) -> (u16, Value) {
    send(cp, "GET", &format!("{collection}/{name}"), &Value::Null)
}

/// Asserts a 422 `Status` with `message`.
fn invalid(answer: (u16, Value), message: &str) {
    let (code, status) = answer;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    assert_eq!(status["message"], message, "{status}");
}

/// POSTs `obj` to `collection`, asserts the refusal and that nothing was
/// stored.
fn refused(cp: &TestControlPlane, collection: &str, obj: Value, message: &str) {
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    invalid(send(cp, "POST", collection, &obj), message);
    assert_eq!(get(cp, collection, &name).0, 404, "{name} was stored");
}

/// POSTs `obj` and returns what was stored.
fn created(cp: &TestControlPlane, collection: &str, obj: Value) -> Value {
    let (code, stored) = send(cp, "POST", collection, &obj);
    assert_eq!(code, 201, "{stored}");
    stored
}

/// PUTs `changed` over `name`, asserts the refusal and that the stored
/// object is still `before`.
fn update_refused(cp: &TestControlPlane, collection: &str, changed: Value, message: &str) {
    let name = changed["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let (_, before) = get(cp, collection, &name);
    invalid(
        send(cp, "PUT", &format!("{collection}/{name}"), &changed),
        message,
    );
    let (_, after) = get(cp, collection, &name);
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "{name} changed"
    );
}

/// kubectl applies `yaml`; with no kubectl, the test says so and goes on.
fn kubectl_apply(cp: &TestControlPlane, test: &str, file: &str, yaml: &str) -> bool {
    if !kubectl_enabled(test) {
        return false;
    }
    let file = cp.manifest(file, yaml);
    cp.kubectl_ok(&["apply", "-f", &file]);
    true
}

#[tokio::test]
async fn nodes_namespaces_leases_and_accounts_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    refused(
        &cp,
        NODES,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
               "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "Sometimes"}]}}),
        "Node \"n1\" is invalid: metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
    );
    refused(
        &cp,
        NODES,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"},
               "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "b", "effect": "NoSchedule"}]}}),
        "Node \"n2\" is invalid: metadata.taints[1]: Duplicate value: core.Taint{Key:\"a\", Value:\"b\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair",
    );
    refused(
        &cp,
        NODES,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n3"},
               "spec": {"podCIDRs": ["10.244.0.0/24", "10.245.0.0/24"]}}),
        "Node \"n3\" is invalid: spec.podCIDRs: Invalid value: []string{\"10.244.0.0/24\", \"10.245.0.0/24\"}: may specify no more than one CIDR for each IP family",
    );
    refused(
        &cp,
        NODES,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n4"},
               "spec": {"podCIDR": "10.244.0.0/33"}}),
        "Node \"n4\" is invalid: spec.podCIDRs[0]: Invalid value: \"10.244.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    );
    // A node as an admin registers it, then taints it; cidrs and provider
    // are set once.
    created(
        &cp,
        NODES,
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"},
               "spec": {"providerID": "skiff://worker", "podCIDR": "10.244.1.0/24",
                        "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}}),
    );
    let (code, tainted) = skiff_tests::request_as(
        "PATCH",
        &cp.address,
        &format!("{NODES}/worker"),
        "application/merge-patch+json",
        r#"{"spec":{"taints":[{"key":"dedicated","value":"gpu","effect":"NoSchedule"}]}}"#,
    )
    .expect("patch");
    assert_eq!(code, 200, "{tainted}");
    let (_, node) = get(&cp, NODES, "worker");
    let mut moved = node.clone();
    moved["spec"]["podCIDRs"] = json!(["10.244.2.0/24"]);
    moved["spec"]["podCIDR"] = json!("10.244.2.0/24");
    moved["spec"]["providerID"] = json!("skiff://elsewhere");
    update_refused(
        &cp,
        NODES,
        moved,
        "Node \"worker\" is invalid: [spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid, spec.providerID: Forbidden: node updates may not change providerID except from \"\" to valid]",
    );
    let mut labelled = node.clone();
    labelled["metadata"]["labels"] = json!({"tier": "gpu"});
    let (code, answer) = send(&cp, "PUT", &format!("{NODES}/worker"), &labelled);
    assert_eq!(code, 200, "{answer}");

    refused(
        &cp,
        NAMESPACES,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"},
               "spec": {"finalizers": ["cleanup"]}}),
        "Namespace \"ns1\" is invalid: spec.finalizers: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified",
    );
    let ns = created(
        &cp,
        NAMESPACES,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns2"},
               "spec": {"finalizers": ["kubernetes", "example.com/cleanup"]}}),
    );
    assert_eq!(
        ns["spec"]["finalizers"],
        json!(["kubernetes", "example.com/cleanup"])
    );

    refused(
        &cp,
        LEASES,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l1"},
               "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0}}),
        "Lease.coordination.k8s.io \"l1\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
    );
    refused(
        &cp,
        LEASES,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l2"},
               "spec": {"leaseTransitions": -1}}),
        "Lease.coordination.k8s.io \"l2\" is invalid: spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
    );
    refused(
        &cp,
        LEASES,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l3"},
               "spec": {"holderIdentity": "a", "preferredHolder": "b"}}),
        "Lease.coordination.k8s.io \"l3\" is invalid: spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
    );
    created(
        &cp,
        LEASES,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
               "spec": {"holderIdentity": "controller-0", "leaseDurationSeconds": 15,
                        "leaseTransitions": 0, "renewTime": "2026-01-01T00:00:00.000000Z"}}),
    );

    // Upstream judges a ServiceAccount by its metadata only.
    refused(
        &cp,
        ACCOUNTS,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "Bot"}}),
        "ServiceAccount \"Bot\" is invalid: metadata.name: Invalid value: \"Bot\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
    if kubectl_apply(
        &cp,
        "nodes_namespaces_leases_and_accounts_are_validated_as_upstream",
        "sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder}\nsecrets: [{name: builder-token}]\nimagePullSecrets: [{name: registry}]\nautomountServiceAccountToken: false\n",
    ) {
        assert_eq!(get(&cp, ACCOUNTS, "builder").0, 200);
        cp.kubectl_ok(&["taint", "node", "worker", "spot=true:PreferNoSchedule"]);
        let (_, node) = get(&cp, NODES, "worker");
        assert_eq!(
            node["spec"]["taints"].as_array().map(Vec::len),
            Some(2),
            "{node}"
        );
    }
}

#[tokio::test]
async fn volumes_and_storage_classes_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    let pv = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec});
    refused(
        &cp,
        VOLUMES,
        pv(
            "pv1",
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}),
        ),
        "PersistentVolume \"pv1\" is invalid: spec: Required value: must specify a volume type",
    );
    refused(
        &cp,
        VOLUMES,
        pv(
            "pv2",
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "hostPath": {"path": "/mnt/a"}, "nfs": {"server": "nfs", "path": "/a"}}),
        ),
        "PersistentVolume \"pv2\" is invalid: spec.nfs: Forbidden: may not specify more than 1 volume type",
    );
    refused(
        &cp,
        VOLUMES,
        pv(
            "pv3",
            json!({"accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/mnt/a"}}),
        ),
        "PersistentVolume \"pv3\" is invalid: [spec.capacity: Required value, spec.capacity: Unsupported value: core.ResourceList(nil): supported values: \"storage\"]",
    );
    refused(
        &cp,
        VOLUMES,
        pv(
            "pv4",
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteSome"],
                   "persistentVolumeReclaimPolicy": "Keep", "hostPath": {"path": "/mnt/a"}}),
        ),
        "PersistentVolume \"pv4\" is invalid: [spec.accessModes: Unsupported value: \"ReadWriteSome\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\", spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"]",
    );
    refused(
        &cp,
        VOLUMES,
        pv(
            "pv5",
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "local": {"path": "/mnt/disks/a"}}),
        ),
        "PersistentVolume \"pv5\" is invalid: spec.nodeAffinity: Required value: Local volume requires node affinity",
    );
    refused(
        &cp,
        VOLUMES,
        pv(
            "pv6",
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                   "hostPath": {"path": ""}}),
        ),
        "PersistentVolume \"pv6\" is invalid: spec.hostPath.path: Required value",
    );

    refused(
        &cp,
        CLASSES,
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sc1"}}),
        "StorageClass.storage.k8s.io \"sc1\" is invalid: provisioner: Required value",
    );
    refused(
        &cp,
        CLASSES,
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sc2"},
               "provisioner": "example.com/disk", "reclaimPolicy": "Recycle", "volumeBindingMode": "Later"}),
        "StorageClass.storage.k8s.io \"sc2\" is invalid: [reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\", volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"]",
    );
    let test = "volumes_and_storage_classes_are_validated_as_upstream";
    let manifests = "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: manual-1}\nspec:\n  capacity: {storage: 5Gi}\n  accessModes: [ReadWriteOnce]\n  storageClassName: manual\n  hostPath: {path: /mnt/data, type: DirectoryOrCreate}\n---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: local-1}\nspec:\n  capacity: {storage: 10Gi}\n  accessModes: [ReadWriteOnce]\n  volumeMode: Filesystem\n  persistentVolumeReclaimPolicy: Delete\n  storageClassName: local-storage\n  local: {path: /mnt/disks/ssd1}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {key: kubernetes.io/hostname, operator: In, values: [worker-1]}\n---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: example.com/ssd\nparameters: {type: ssd}\nallowVolumeExpansion: true\n";
    if !kubectl_apply(&cp, test, "volumes.yaml", manifests) {
        created(
            &cp,
            VOLUMES,
            pv(
                "manual-1",
                json!({"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                       "storageClassName": "manual", "hostPath": {"path": "/mnt/data"}}),
            ),
        );
        created(
            &cp,
            CLASSES,
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "fast"}, "provisioner": "example.com/ssd",
                   "parameters": {"type": "ssd"}}),
        );
    } else {
        assert_eq!(get(&cp, VOLUMES, "manual-1").0, 200);
        assert_eq!(get(&cp, VOLUMES, "local-1").0, 200);
    }
    // A volume's policy may change, its source may not.
    let (code, answer) = skiff_tests::request_as(
        "PATCH",
        &cp.address,
        &format!("{VOLUMES}/manual-1"),
        "application/merge-patch+json",
        r#"{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}"#,
    )
    .expect("patch");
    assert_eq!(code, 200, "{answer}");
    let (_, volume) = get(&cp, VOLUMES, "manual-1");
    let mut moved = volume.clone();
    moved["spec"]["hostPath"]["path"] = json!("/mnt/other");
    update_refused(
        &cp,
        VOLUMES,
        moved,
        "PersistentVolume \"manual-1\" is invalid: spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation",
    );

    let (_, class) = get(&cp, CLASSES, "fast");
    assert_eq!(class["volumeBindingMode"], "Immediate", "{class}");
    let mut changed = class.clone();
    changed["parameters"] = json!({"type": "hdd"});
    update_refused(
        &cp,
        CLASSES,
        changed,
        "StorageClass.storage.k8s.io \"fast\" is invalid: parameters: Forbidden: updates to parameters are forbidden.",
    );
    let mut changed = class.clone();
    changed["volumeBindingMode"] = json!("WaitForFirstConsumer");
    changed["reclaimPolicy"] = json!("Retain");
    update_refused(
        &cp,
        CLASSES,
        changed,
        "StorageClass.storage.k8s.io \"fast\" is invalid: [reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden., volumeBindingMode: Invalid value: \"WaitForFirstConsumer\": field is immutable]",
    );
    // What Skiff made itself can be written back as read.
    let (_, default_class) = get(&cp, CLASSES, "skiff-local");
    let mut labelled = default_class.clone();
    labelled["metadata"]["labels"] = json!({"team": "a"});
    let (code, answer) = send(&cp, "PUT", &format!("{CLASSES}/skiff-local"), &labelled);
    assert_eq!(code, 200, "{answer}");
}

#[tokio::test]
async fn endpoints_slices_and_revisions_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    let endpoints = |name: &str, subsets: Value| json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name}, "subsets": subsets});
    refused(
        &cp,
        ENDPOINTS,
        endpoints(
            "e1",
            json!([{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}]}]),
        ),
        "Endpoints \"e1\" is invalid: subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
    );
    refused(
        &cp,
        ENDPOINTS,
        endpoints(
            "e2",
            json!([{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 80}, {"port": 443}]}]),
        ),
        "Endpoints \"e2\" is invalid: [subsets[0].ports[0].name: Required value, subsets[0].ports[1].name: Required value]",
    );
    refused(
        &cp,
        ENDPOINTS,
        endpoints(
            "e3",
            json!([{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 70000, "protocol": "HTTP"}]}]),
        ),
        "Endpoints \"e3\" is invalid: [subsets[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive, subsets[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"]",
    );
    refused(
        &cp,
        ENDPOINTS,
        endpoints("e4", json!([{"ports": [{"port": 80}]}])),
        "Endpoints \"e4\" is invalid: subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
    );
    let external = created(
        &cp,
        ENDPOINTS,
        endpoints(
            "external-db",
            json!([{"addresses": [{"ip": "192.168.10.5"}], "ports": [{"name": "pg", "port": 5432}]}]),
        ),
    );
    assert_eq!(external["subsets"][0]["ports"][0]["protocol"], "TCP");

    let slice = |name: &str, extra: Value| {
        let mut s = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                           "metadata": {"name": name}});
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        s
    };
    refused(
        &cp,
        SLICES,
        slice("s1", json!({"endpoints": [{"addresses": ["10.0.0.1"]}]})),
        "EndpointSlice.discovery.k8s.io \"s1\" is invalid: addressType: Required value",
    );
    refused(
        &cp,
        SLICES,
        slice(
            "s2",
            json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]}),
        ),
        "EndpointSlice.discovery.k8s.io \"s2\" is invalid: endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address",
    );
    refused(
        &cp,
        SLICES,
        slice(
            "s3",
            json!({"addressType": "IPv4", "endpoints": [{"addresses": []}],
                   "ports": [{"name": "http", "port": 80}, {"name": "http", "port": 8080}]}),
        ),
        "EndpointSlice.discovery.k8s.io \"s3\" is invalid: [endpoints[0].addresses: Required value: must contain at least 1 address, ports[1].name: Duplicate value: \"http\"]",
    );
    refused(
        &cp,
        SLICES,
        slice("s4", json!({"addressType": "IP"})),
        "EndpointSlice.discovery.k8s.io \"s4\" is invalid: addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
    );
    let stored = created(
        &cp,
        SLICES,
        slice(
            "web-abc",
            json!({"addressType": "IPv4",
                   "endpoints": [{"addresses": ["10.1.0.7"], "conditions": {"ready": true}, "nodeName": "worker"}],
                   "ports": [{"name": "http", "port": 80}]}),
        ),
    );
    assert_eq!(stored["ports"][0]["protocol"], "TCP");
    created(
        &cp,
        SLICES,
        slice(
            "db-fqdn",
            json!({"addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com"]}]}),
        ),
    );
    let mut retyped = stored.clone();
    retyped["addressType"] = json!("IPv6");
    retyped["endpoints"] = json!([]);
    update_refused(
        &cp,
        SLICES,
        retyped,
        "EndpointSlice.discovery.k8s.io \"web-abc\" is invalid: addressType: Invalid value: \"IPv6\": field is immutable",
    );

    let revision = |name: &str, extra: Value| {
        let mut r = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
                           "metadata": {"name": name}});
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    };
    refused(
        &cp,
        REVISIONS,
        revision("r1", json!({"revision": 1})),
        "ControllerRevision.apps \"r1\" is invalid: data: Required value: data is mandatory",
    );
    refused(
        &cp,
        REVISIONS,
        revision("r2", json!({"revision": -1, "data": {"spec": {}}})),
        "ControllerRevision.apps \"r2\" is invalid: revision: Invalid value: -1: must be greater than or equal to 0",
    );
    let stored = created(
        &cp,
        REVISIONS,
        revision(
            "web-7d4b9c",
            json!({"revision": 1, "data": {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}}),
        ),
    );
    let mut renumbered = stored.clone();
    renumbered["revision"] = json!(3);
    let (code, answer) = send(&cp, "PUT", &format!("{REVISIONS}/web-7d4b9c"), &renumbered);
    assert_eq!(code, 200, "{answer}");
    let mut rewritten = answer.clone();
    rewritten["data"] = json!({"spec": {}});
    update_refused(
        &cp,
        REVISIONS,
        rewritten,
        "ControllerRevision.apps \"web-7d4b9c\" is invalid: data: Invalid value: {\"spec\":{}}: field is immutable",
    );
}
