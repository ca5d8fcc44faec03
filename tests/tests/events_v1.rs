//! `events.k8s.io/v1` Events against a real control plane: one stored
//! object behind both group versions, converted both ways (create, read,
//! list, watch, patch, delete), discovery, field selectors, kubectl's table
//! and upstream's validation of new-style Events.

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};
use skiff_tests::request_as;

const CORE: &str = "/api/v1/namespaces/default/events";
const V1: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn call(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, text) = http_json(method, &cp.address, path, &body).expect("http");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, value)
}

fn ok(cp: &TestControlPlane, method: &str, path: &str, body: &Value, want: u16) -> Value {
    let (code, obj) = call(cp, method, path, body);
    assert_eq!(code, want, "{method} {path}: {obj}");
    obj
}

fn new_style(name: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "skiff.dev/e2e",
        "reportingInstance": "e2e-1",
        "action": "Testing",
        "reason": "Tested",
        "regarding": {"kind": "Pod", "name": "web", "namespace": "default", "apiVersion": "v1"},
        "note": "from events.k8s.io",
        "type": "Normal",
    })
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn one_event_behind_both_group_versions() {
    if !kubectl_enabled("one_event_behind_both_group_versions") {
        return;
    }
    let cp = TestControlPlane::start().await;

    // Discovery names the group and its resource.
    let groups = ok(&cp, "GET", "/apis", &Value::Null, 200);
    assert!(
        groups["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["name"] == "events.k8s.io"),
        "{groups}"
    );
    let resources = ok(&cp, "GET", "/apis/events.k8s.io/v1", &Value::Null, 200);
    let events = resources["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "events")
        .unwrap_or_else(|| panic!("no events in {resources}"));
    assert_eq!(events["kind"], "Event");
    assert_eq!(events["namespaced"], true);

    // Created through events.k8s.io, read through core/v1.
    let created = ok(&cp, "POST", V1, &new_style("modern"), 201);
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "from events.k8s.io");
    let core = ok(&cp, "GET", &format!("{CORE}/modern"), &Value::Null, 200);
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "from events.k8s.io");
    assert_eq!(core["involvedObject"]["name"], "web");
    assert_eq!(core["reportingComponent"], "skiff.dev/e2e");
    assert_eq!(core["reportingInstance"], "e2e-1");
    assert!(core.get("note").is_none() && core.get("regarding").is_none());
    assert_eq!(core["metadata"]["uid"], created["metadata"]["uid"]);

    // Created through core/v1 (an old-style Event), read through events.k8s.io.
    let legacy = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "legacy", "labels": {"era": "old"}},
        "involvedObject": {"kind": "Node", "name": "node1"},
        "reason": "Rebooted", "message": "from core/v1", "type": "Warning",
        "source": {"component": "kubelet", "host": "node1"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:09Z",
        "count": 4,
    });
    ok(&cp, "POST", CORE, &legacy, 201);
    let modern = ok(&cp, "GET", &format!("{V1}/legacy"), &Value::Null, 200);
    assert_eq!(modern["apiVersion"], "events.k8s.io/v1");
    assert_eq!(modern["note"], "from core/v1");
    assert_eq!(modern["regarding"]["name"], "node1");
    assert_eq!(modern["deprecatedSource"]["component"], "kubelet");
    assert_eq!(modern["deprecatedCount"], 4);
    assert_eq!(modern["deprecatedFirstTimestamp"], "2026-01-01T00:00:00Z");
    assert_eq!(modern["deprecatedLastTimestamp"], "2026-01-01T00:00:09Z");
    // Typed clients need eventTime: a legacy Event shows its first occurrence.
    assert_eq!(modern["eventTime"], "2026-01-01T00:00:00.000000Z");
    assert!(modern.get("message").is_none() && modern.get("involvedObject").is_none());

    // Lists of both group versions hold both, each in its own form.
    let v1_list = ok(&cp, "GET", V1, &Value::Null, 200);
    assert_eq!(v1_list["kind"], "EventList");
    assert_eq!(v1_list["apiVersion"], "events.k8s.io/v1");
    let mut listed = names(&v1_list);
    listed.sort();
    assert_eq!(listed, ["legacy", "modern"]);
    assert!(
        v1_list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i.get("note").is_some() && i.get("message").is_none()),
        "{v1_list}"
    );
    let core_list = ok(&cp, "GET", CORE, &Value::Null, 200);
    assert!(
        core_list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i.get("message").is_some() && i.get("note").is_none()),
        "{core_list}"
    );
    let all = ok(
        &cp,
        "GET",
        "/apis/events.k8s.io/v1/events",
        &Value::Null,
        200,
    );
    assert!(names(&all).contains(&"modern".to_string()));

    // Field selectors name the events.k8s.io fields.
    let selected = ok(
        &cp,
        "GET",
        &format!("{V1}?fieldSelector=regarding.kind%3DNode"),
        &Value::Null,
        200,
    );
    assert_eq!(names(&selected), ["legacy"]);
    let selected = ok(
        &cp,
        "GET",
        &format!("{V1}?fieldSelector=reportingController%3Dskiff.dev%2Fe2e"),
        &Value::Null,
        200,
    );
    assert_eq!(names(&selected), ["modern"]);
    let labelled = ok(
        &cp,
        "GET",
        &format!("{V1}?labelSelector=era%3Dold"),
        &Value::Null,
        200,
    );
    assert_eq!(names(&labelled), ["legacy"]);

    // Patches of every kind apply to the events.k8s.io form.
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:30.000000Z"}});
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{V1}/modern"),
        "application/merge-patch+json",
        &series.to_string(),
    )
    .expect("merge patch");
    assert_eq!(code, 200, "{text}");
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{V1}/modern"),
        "application/strategic-merge-patch+json",
        &json!({"metadata": {"labels": {"patched": "strategic"}}}).to_string(),
    )
    .expect("strategic patch");
    assert_eq!(code, 200, "{text}");
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{V1}/modern"),
        "application/json-patch+json",
        &json!([{"op": "test", "path": "/note", "value": "from events.k8s.io"},
                {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}])
        .to_string(),
    )
    .expect("json patch");
    assert_eq!(code, 200, "{text}");
    let core = ok(&cp, "GET", &format!("{CORE}/modern"), &Value::Null, 200);
    assert_eq!(core["series"]["count"], 2);
    assert_eq!(core["metadata"]["labels"]["patched"], "strategic");
    assert_eq!(core["metadata"]["annotations"]["a"], "b");
    // What upstream keeps immutable through events.k8s.io stays so.
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{V1}/modern"),
        "application/merge-patch+json",
        &json!({"note": "rewritten"}).to_string(),
    )
    .expect("immutable patch");
    assert_eq!(code, 422, "{text}");
    assert!(
        text.contains(r#"Event.events.k8s.io \"modern\" is invalid: message: Invalid value: \"rewritten\": field is immutable"#),
        "{text}"
    );

    // Server-side apply through events.k8s.io.
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{V1}/applied?fieldManager=e2e"),
        "application/apply-patch+yaml",
        &new_style("applied").to_string(),
    )
    .expect("apply");
    assert_eq!(code, 201, "{text}");
    let core = ok(&cp, "GET", &format!("{CORE}/applied"), &Value::Null, 200);
    assert_eq!(core["message"], "from events.k8s.io");

    // A replace of a legacy Event read through events.k8s.io keeps it legacy.
    let mut read = ok(&cp, "GET", &format!("{V1}/legacy"), &Value::Null, 200);
    read["metadata"]["labels"]["era"] = json!("kept");
    let replaced = ok(&cp, "PUT", &format!("{V1}/legacy"), &read, 200);
    assert_eq!(replaced["metadata"]["labels"]["era"], "kept");
    let core = ok(&cp, "GET", &format!("{CORE}/legacy"), &Value::Null, 200);
    assert!(core.get("eventTime").is_none(), "{core}");
    assert_eq!(core["count"], 4);

    // Invalid new-style Events are refused with upstream's words.
    let mut bad = new_style("bad");
    for field in ["reportingController", "reportingInstance"] {
        bad.as_object_mut().expect("object").remove(field);
    }
    bad["note"] = json!("x".repeat(1025));
    bad["type"] = json!("Fatal");
    let (code, status) = call(&cp, "POST", V1, &bad);
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["group"], "events.k8s.io");
    let message = status["message"].as_str().expect("message");
    for expected in [
        "Event.events.k8s.io \"bad\" is invalid: [",
        "reportingController: Required value",
        "reportingInstance: Required value",
        "message: Invalid value: \"\": can have at most 1024 characters",
        "type: Invalid value: \"\": has invalid value: Fatal",
    ] {
        assert!(message.contains(expected), "{expected} not in {message}");
    }
    let mut no_time = new_style("no-time");
    no_time.as_object_mut().expect("object").remove("eventTime");
    let (code, status) = call(&cp, "POST", V1, &no_time);
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("eventTime: Required value")),
        "{status}"
    );
    let mut deprecated = new_style("deprecated");
    deprecated["deprecatedCount"] = json!(3);
    let (code, status) = call(&cp, "POST", V1, &deprecated);
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("count: Invalid value: \"\": needs to be unset")),
        "{status}"
    );
    // The same fields through core/v1 stay accepted (legacy clients).
    ok(
        &cp,
        "POST",
        CORE,
        &json!({"metadata": {"name": "old-client"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "R", "message": "m", "type": "Normal", "count": 3}),
        201,
    );

    // Core/v1 keeps upstream's legacy checks.
    let (code, status) = call(
        &cp,
        "POST",
        CORE,
        &json!({"metadata": {"name": "elsewhere"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"},
                "reason": "R", "message": "m", "type": "Normal"}),
    );
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Event \"elsewhere\" is invalid: involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"
    );

    // kubectl: a table of events.k8s.io Events, and a create from a manifest.
    let table = cp.kubectl_ok(&["get", "events.v1.events.k8s.io", "-n", "default"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
        assert!(header.contains(column), "{column} missing: {table}");
    }
    assert!(
        table.lines().any(|l| l.contains("Rebooted")
            && l.contains("node/node1")
            && l.contains("from core/v1")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("pod/web") && l.contains("from events.k8s.io")),
        "{table}"
    );
    let manifest = cp.manifest(
        "event.yaml",
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: from-kubectl\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: skiff.dev/kubectl\nreportingInstance: k-1\naction: Applying\nreason: Applied\nregarding:\n  kind: Pod\n  name: web\n  namespace: default\nnote: via kubectl\ntype: Normal\n",
    );
    cp.kubectl_ok(&["create", "-f", &manifest]);
    let shown = cp.kubectl_ok(&["get", "events", "from-kubectl", "-o", "jsonpath={.message}"]);
    assert_eq!(shown, "via kubectl");
    let refused = cp.kubectl_err(&[
        "create",
        "-f",
        &cp.manifest(
            "bad.yaml",
            "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: bad-kubectl\nreason: R\ntype: Normal\n",
        ),
    ]);
    assert!(
        refused.contains("\"bad-kubectl\" is invalid")
            && refused.contains("eventTime: Required value"),
        "{refused}"
    );

    let explained = cp.kubectl_ok(&[
        "explain",
        "events.regarding",
        "--api-version=events.k8s.io/v1",
    ]);
    assert!(
        explained.contains("GROUP:      events.k8s.io") && explained.contains("ObjectReference"),
        "{explained}"
    );
    let watched = cp.kubectl(&[
        "get",
        "events.v1.events.k8s.io",
        "-n",
        "default",
        "--watch",
        "--request-timeout=2s",
    ]);
    let watched = String::from_utf8_lossy(&watched.stdout);
    assert!(
        watched.lines().next().is_some_and(|h| h.contains("REASON"))
            && watched.contains("from core/v1"),
        "{watched}"
    );

    // Deletes through either group version remove the one object.
    let gone = ok(&cp, "DELETE", &format!("{V1}/legacy"), &Value::Null, 200);
    assert_eq!(gone["note"], "from core/v1", "{gone}");
    assert_eq!(gone["eventTime"], "2026-01-01T00:00:00.000000Z", "{gone}");
    let (code, _) = call(&cp, "GET", &format!("{CORE}/legacy"), &Value::Null);
    assert_eq!(code, 404);
    let (code, status) = call(&cp, "GET", &format!("{V1}/legacy"), &Value::Null);
    assert_eq!(code, 404);
    assert_eq!(
        status["message"],
        "events.events.k8s.io \"legacy\" not found"
    );
    let collection = ok(
        &cp,
        "DELETE",
        &format!("{V1}?labelSelector=patched%3Dstrategic"),
        &Value::Null,
        200,
    );
    assert_eq!(names(&collection), ["modern"]);
    assert_eq!(collection["items"][0]["note"], "from events.k8s.io");
    let (code, _) = call(&cp, "GET", &format!("{CORE}/modern"), &Value::Null);
    assert_eq!(code, 404);
}

#[tokio::test]
async fn watches_of_events_k8s_io_carry_the_converted_form() {
    if !kubectl_enabled("watches_of_events_k8s_io_carry_the_converted_form") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let list = ok(&cp, "GET", V1, &Value::Null, 200);
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    let address = cp.address.clone();
    let watcher = std::thread::spawn(move || {
        request_as(
            "GET",
            &address,
            &format!("{V1}?watch=true&resourceVersion={rv}&timeoutSeconds=3"),
            "application/json",
            "",
        )
        .expect("watch")
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    ok(
        &cp,
        "POST",
        CORE,
        &json!({"metadata": {"name": "seen"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "Watched", "message": "through core", "type": "Normal"}),
        201,
    );
    ok(&cp, "DELETE", &format!("{CORE}/seen"), &Value::Null, 200);
    let (code, body) = watcher.join().expect("watcher");
    assert_eq!(code, 200, "{body}");
    let lines: Vec<Value> = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("watch line"))
        .collect();
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(types, ["ADDED", "DELETED"], "{body}");
    for line in &lines {
        let object = &line["object"];
        assert_eq!(object["apiVersion"], "events.k8s.io/v1", "{body}");
        assert_eq!(object["note"], "through core", "{body}");
        assert_eq!(object["regarding"]["name"], "p", "{body}");
        assert!(object.get("message").is_none(), "{body}");
    }
}
