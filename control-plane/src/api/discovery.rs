//! `/version`, discovery and the OpenAPI v3 documents kubectl uses to
//! decide that the server validates fields itself.
//!
//! Discovery comes in two formats built from one table
//! ([`RESOURCES`]): legacy (`/api`, `/apis`, then one `APIResourceList` per
//! group version) and aggregated (`APIGroupDiscoveryList`, everything in the
//! `/api` and `/apis` replies), chosen by the `Accept` header.

use serde_json::{Value, json};

use crate::registry::resources::{RESOURCES, ResourceType, group_versions};

use crate::version::MINOR;

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": format!("v1.{MINOR}.0-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "skiff",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "rustc",
        "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
    })
}

/// What a subresource answers with: the kind it returns and its verbs.
struct Subresource {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

/// The subresources of `r` as discovery describes them (both formats).
fn subresources(r: &ResourceType) -> impl Iterator<Item = Subresource> + '_ {
    r.subresources.iter().filter_map(move |sub| {
        let (group, version, kind, verbs): (_, _, _, &'static [&'static str]) = match *sub {
            "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
            "status" => (r.group, r.version, r.kind, &["get", "patch", "update"]),
            "log" => ("", "v1", "Pod", &["get"]),
            "exec" => ("", "v1", "PodExecOptions", &["create", "get"]),
            "binding" => ("", "v1", "Binding", &["create"]),
            "eviction" => ("policy", "v1", "Eviction", &["create"]),
            _ => return None,
        };
        Some(Subresource {
            name: sub,
            group,
            version,
            kind,
            verbs,
        })
    })
}

fn resource_entries(r: &ResourceType) -> Vec<Value> {
    let mut out = vec![json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.behaviour.verbs(),
        "shortNames": r.short_names,
        "categories": r.categories,
    })];
    for sub in subresources(r) {
        out.push(json!({
            "name": format!("{}/{}", r.plural, sub.name),
            "singularName": "",
            "namespaced": r.namespaced,
            "group": sub.group,
            "version": sub.version,
            "kind": sub.kind,
            "verbs": sub.verbs,
        }));
    }
    out
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`.
pub fn api_groups() -> Value {
    let groups: Vec<Value> = group_versions()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/{group}/{version}`; `None` for unknown groups.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(resource_entries)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The aggregated discovery versions (`apidiscovery.k8s.io`) Skiff serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregated {
    /// `apidiscovery.k8s.io/v2` (kubectl ≥ 1.30).
    V2,
    /// `apidiscovery.k8s.io/v2beta1` (kubectl 1.26 to 1.32 offer it too;
    /// older ones offer nothing else).
    V2Beta1,
}

impl Aggregated {
    fn version(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V2Beta1 => "v2beta1",
        }
    }

    /// The exact reply `Content-Type`: client-go picks the decoder by it.
    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

/// Chooses the discovery format from an `Accept` header: the first media
/// range Skiff can serve wins, as upstream's negotiation does (kubectl lists
/// its preference first and never sends q-values here).
pub fn negotiate(accept: &str) -> Option<Aggregated> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let (mut group, mut version, mut as_kind) = (None, None, None);
        for param in parts {
            match param.split_once('=') {
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                Some(("as", v)) => as_kind = Some(v),
                _ => {}
            }
        }
        match (media, group, version, as_kind) {
            (
                "application/json",
                Some("apidiscovery.k8s.io"),
                Some(v),
                Some("APIGroupDiscoveryList"),
            ) => match v {
                "v2" => return Some(Aggregated::V2),
                "v2beta1" => return Some(Aggregated::V2Beta1),
                _ => {}
            },
            ("application/json" | "application/*" | "*/*", None, _, None) => return None,
            _ => {}
        }
    }
    None
}

/// `apidiscovery.k8s.io` types; k8s-openapi does not generate them.
mod apidiscovery {
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GroupDiscoveryList {
        pub kind: &'static str,
        pub api_version: String,
        pub metadata: Metadata,
        pub items: Vec<GroupDiscovery>,
    }

    #[derive(Serialize, Default)]
    pub struct Metadata {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<&'static str>,
    }

    #[derive(Serialize)]
    pub struct GroupDiscovery {
        pub metadata: Metadata,
        pub versions: Vec<VersionDiscovery>,
    }

    #[derive(Serialize)]
    pub struct VersionDiscovery {
        pub version: &'static str,
        pub resources: Vec<ResourceDiscovery>,
        pub freshness: &'static str,
    }

    #[derive(Serialize)]
    pub struct Kind {
        pub group: &'static str,
        pub version: &'static str,
        pub kind: &'static str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ResourceDiscovery {
        pub resource: &'static str,
        pub response_kind: Kind,
        pub scope: &'static str,
        pub singular_resource: &'static str,
        pub verbs: &'static [&'static str],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        pub short_names: &'static [&'static str],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        pub categories: &'static [&'static str],
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub subresources: Vec<SubresourceDiscovery>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SubresourceDiscovery {
        pub subresource: &'static str,
        pub response_kind: Kind,
        pub verbs: &'static [&'static str],
    }
}

fn aggregated_resource(r: &'static ResourceType) -> apidiscovery::ResourceDiscovery {
    use apidiscovery::{Kind, ResourceDiscovery, SubresourceDiscovery};
    ResourceDiscovery {
        resource: r.plural,
        response_kind: Kind {
            group: r.group,
            version: r.version,
            kind: r.kind,
        },
        scope: if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        },
        singular_resource: r.singular,
        verbs: r.behaviour.verbs(),
        short_names: r.short_names,
        categories: r.categories,
        subresources: subresources(r)
            .map(|s| SubresourceDiscovery {
                subresource: s.name,
                response_kind: Kind {
                    group: s.group,
                    version: s.version,
                    kind: s.kind,
                },
                verbs: s.verbs,
            })
            .collect(),
    }
}

/// `GET /api` (`core == true`) or `/apis` as an aggregated
/// `APIGroupDiscoveryList`: every group, version and resource in one reply,
/// built from the same table as the legacy documents.
pub fn aggregated(core: bool, format: Aggregated) -> Value {
    use apidiscovery::{GroupDiscovery, GroupDiscoveryList, Metadata, VersionDiscovery};
    let gvs = if core {
        vec![("", "v1")]
    } else {
        group_versions()
    };
    let items = gvs
        .into_iter()
        .map(|(group, version)| GroupDiscovery {
            metadata: Metadata {
                name: (!group.is_empty()).then_some(group),
            },
            versions: vec![VersionDiscovery {
                version,
                resources: RESOURCES
                    .iter()
                    .filter(|r| r.group == group && r.version == version)
                    .map(aggregated_resource)
                    .collect(),
                freshness: "Current",
            }],
        })
        .collect();
    let list = GroupDiscoveryList {
        kind: "APIGroupDiscoveryList",
        api_version: format!("apidiscovery.k8s.io/{}", format.version()),
        metadata: Metadata::default(),
        items,
    };
    serde_json::to_value(list).unwrap_or_else(|_| json!({}))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: one document per group version.
pub fn openapi_root() -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs = vec![("", "v1")];
    gvs.extend(group_versions());
    for (g, v) in gvs {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=skiff")}),
        );
    }
    json!({"paths": paths})
}

/// The upstream schema name of `r`'s kind (`io.k8s.api.apps.v1.Deployment`).
fn schema_name(r: &ResourceType) -> String {
    let group = match r.group {
        "" => "core".to_string(),
        // `rbac.authorization.k8s.io` is `io.k8s.api.rbac`.
        g => g.split('.').next().unwrap_or(g).to_string(),
    };
    format!("io.k8s.api.{group}.{}.{}", r.version, r.kind)
}

/// `GET /openapi/v3/{api/v1 | apis/g/v}`: the schemas of the group
/// version's kinds (for `kubectl explain`), and a PATCH operation per kind
/// that advertises the `fieldValidation` parameter, so kubectl leaves field
/// validation to the server (which decodes every object strictly).
pub fn openapi_group(path: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| gv_path(r.group, r.version) == path)
    {
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(
            item,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let kinds: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| gv_path(r.group, r.version) == path)
        .collect();
    for r in &kinds {
        r.behaviour.add_schema(&mut generator);
    }
    let mut schemas = generator.take_definitions(true);
    for r in &kinds {
        if let Some(schema) = schemas
            .get_mut(&schema_name(r))
            .and_then(Value::as_object_mut)
        {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// Just enough of gnostic's `openapi_v2.Document` for kubectl: an empty
/// Swagger 2.0 document. kubectl only asks for v2 (in protobuf) about kinds
/// v3 does not describe; finding none there, it lets the server decide
/// (`no matches for kind ... in version ...`).
#[derive(Clone, PartialEq, prost::Message)]
struct OpenApiV2Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<OpenApiV2Info>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OpenApiV2Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `GET /openapi/v2` body (protobuf) and its content type.
pub fn openapi_v2() -> (&'static str, Vec<u8>) {
    let doc = OpenApiV2Document {
        swagger: "2.0".into(),
        info: Some(OpenApiV2Info {
            title: "Kubernetes".into(),
            version: format!("v1.{MINOR}.0"),
        }),
    };
    (
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        prost::Message::encode_to_vec(&doc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::printing::elements;

    const KUBECTL_1_37: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn every_served_kind_publishes_its_schema_with_its_kind() {
        for r in RESOURCES.iter() {
            let doc = openapi_group(&gv_path(r.group, r.version)).expect("group version");
            let schema = &doc["components"]["schemas"][schema_name(r)];
            assert_eq!(
                schema["x-kubernetes-group-version-kind"],
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
                "{}",
                r.qualified()
            );
        }
    }

    #[test]
    fn accept_header_picks_the_first_servable_format() {
        assert_eq!(negotiate(KUBECTL_1_37), Some(Aggregated::V2));
        assert_eq!(
            negotiate(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            Some(Aggregated::V2Beta1)
        );
        assert_eq!(negotiate("application/json, */*"), None);
        assert_eq!(
            negotiate(
                "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            ),
            None,
            "legacy listed first wins"
        );
        assert_eq!(
            negotiate("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"),
            None
        );
    }

    #[test]
    fn aggregated_discovery_matches_the_legacy_documents() {
        let core = aggregated(true, Aggregated::V2);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(
            items[0]["metadata"].get("name").is_none(),
            "core has no name"
        );
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods")
            .clone();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(
            pods["responseKind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        let subs: Vec<&str> = elements(&pods["subresources"])
            .filter_map(|s| s["subresource"].as_str())
            .collect();
        assert_eq!(subs, ["status", "log", "exec", "binding", "eviction"]);
        // kubectl drain evicts only when pods/eviction names its group and
        // version (else it falls back to deleting).
        let eviction = elements(&pods["subresources"])
            .find(|s| s["subresource"] == "eviction")
            .expect("eviction");
        assert_eq!(
            eviction["responseKind"],
            json!({"group": "policy", "version": "v1", "kind": "Eviction"})
        );
        assert_eq!(eviction["verbs"], json!(["create"]));

        let groups = aggregated(false, Aggregated::V2Beta1);
        assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        for (group, version) in group_versions() {
            let item = groups["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|i| i["metadata"]["name"] == group)
                .unwrap_or_else(|| panic!("group {group}"));
            let legacy = resource_list(group, version).expect("legacy list");
            let legacy_names: Vec<String> = legacy["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .filter_map(|r| r["name"].as_str().map(String::from))
                .collect();
            let mut aggregated_names = Vec::new();
            for r in item["versions"][0]["resources"]
                .as_array()
                .expect("resources")
            {
                let name = r["resource"].as_str().expect("name");
                aggregated_names.push(name.to_string());
                for s in r["subresources"].as_array().into_iter().flatten() {
                    aggregated_names.push(format!(
                        "{name}/{}",
                        s["subresource"].as_str().expect("sub")
                    ));
                }
            }
            assert_eq!(aggregated_names, legacy_names, "{group}/{version}");
        }
        let deploy = groups["items"][0]["versions"][0]["resources"][0].clone();
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(
            deploy["subresources"][1],
            json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]})
        );
    }
}
