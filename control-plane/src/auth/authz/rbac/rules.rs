//! Policy rules: whether one allows a request (upstream's `RuleAllows`),
//! and whether a set of rules covers another (escalation prevention).

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::auth::request_info::RequestInfo;

/// `*` in any list of a rule.
const ALL: &str = "*";

/// One rule as the index keeps it (lists, never `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// `get`, `list`, `*`.
    pub verbs: Vec<String>,
    /// `""`, `apps`, `*`.
    pub api_groups: Vec<String>,
    /// `pods`, `pods/log`, `*/scale`, `*`.
    pub resources: Vec<String>,
    /// Only these objects, when not empty.
    pub resource_names: Vec<String>,
    /// `/healthz`, `/api/*`, `*`.
    pub non_resource_urls: Vec<String>,
}

impl From<&PolicyRule> for Rule {
    fn from(r: &PolicyRule) -> Self {
        let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        Self {
            verbs: r.verbs.clone(),
            api_groups: list(&r.api_groups),
            resources: list(&r.resources),
            resource_names: list(&r.resource_names),
            non_resource_urls: list(&r.non_resource_urls),
        }
    }
}

impl From<&Rule> for PolicyRule {
    fn from(r: &Rule) -> Self {
        let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Self {
            verbs: r.verbs.clone(),
            api_groups: list(&r.api_groups),
            resources: list(&r.resources),
            resource_names: list(&r.resource_names),
            non_resource_urls: list(&r.non_resource_urls),
        }
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == ALL || v == value)
}

/// Whether a rule's resource names `resource` with `subresource` (`""`
/// for none): exactly (`pods/log`), all (`*`), or any resource's
/// subresource (`*/scale`).
fn resource_matches(rule_resource: &str, resource: &str, subresource: &str) -> bool {
    if rule_resource == ALL {
        return true;
    }
    if subresource.is_empty() {
        return rule_resource == resource;
    }
    match rule_resource.split_once('/') {
        Some((r, s)) => s == subresource && (r == resource || r == ALL),
        None => false,
    }
}

/// Whether a rule's URL matches `path`: exactly, or as a prefix ending
/// in `*`.
fn url_matches(rule_url: &str, path: &str) -> bool {
    match rule_url.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => rule_url == path,
    }
}

impl Rule {
    /// Upstream's `RuleAllows`.
    pub fn allows(&self, request: &RequestInfo) -> bool {
        if !has(&self.verbs, &request.verb) {
            return false;
        }
        if !request.is_resource_request {
            return self
                .non_resource_urls
                .iter()
                .any(|u| url_matches(u, &request.path));
        }
        has(&self.api_groups, &request.api_group)
            && self
                .resources
                .iter()
                .any(|r| resource_matches(r, &request.resource, &request.subresource))
            && (self.resource_names.is_empty() || self.resource_names.contains(&request.name))
    }

    /// Whether this rule alone covers every request `other` allows:
    /// `*` covers anything (also a literal `*`), a URL prefix covers
    /// longer ones, names narrow.
    fn covers(&self, other: &Rule) -> bool {
        let all = |mine: &[String], theirs: &[String]| theirs.iter().all(|t| has(mine, t));
        if !all(&self.verbs, &other.verbs) {
            return false;
        }
        if !other.non_resource_urls.is_empty() {
            return other.non_resource_urls.iter().all(|theirs| {
                self.non_resource_urls.iter().any(|mine| {
                    mine == theirs
                        || mine
                            .strip_suffix('*')
                            .is_some_and(|prefix| theirs.starts_with(prefix))
                })
            });
        }
        let resources = other.resources.iter().all(|theirs| {
            let (resource, subresource) = theirs.split_once('/').unwrap_or((theirs, ""));
            self.resources.iter().any(|mine| {
                mine == theirs
                    || mine == ALL
                    || (resource != ALL && resource_matches(mine, resource, subresource))
            })
        });
        let names = self.resource_names.is_empty()
            || (!other.resource_names.is_empty()
                && other
                    .resource_names
                    .iter()
                    .all(|n| self.resource_names.contains(n)));
        all(&self.api_groups, &other.api_groups) && resources && names
    }
}

/// The rules of `wanted` that no rule of `held` covers, broken down to
/// one group, resource and name (or URL) as upstream reports them, the
/// verbs of one such target merged; empty when `held` covers all.
pub fn uncovered(held: &[&Rule], wanted: &[Rule]) -> Vec<Rule> {
    let mut missing: Vec<Rule> = Vec::new();
    for rule in wanted {
        for atom in atoms(rule) {
            if held.iter().any(|h| h.covers(&atom)) {
                continue;
            }
            let same_target = missing.iter_mut().find(|m| {
                (
                    &m.api_groups,
                    &m.resources,
                    &m.resource_names,
                    &m.non_resource_urls,
                ) == (
                    &atom.api_groups,
                    &atom.resources,
                    &atom.resource_names,
                    &atom.non_resource_urls,
                )
            });
            match same_target {
                Some(m) => m.verbs.extend(atom.verbs),
                None => missing.push(atom),
            }
        }
    }
    missing
}

/// A rule broken down into rules of one verb and one group, resource and
/// name (or one URL), in upstream's `BreakdownRule` order.
fn atoms(rule: &Rule) -> Vec<Rule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = Rule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Rule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                    continue;
                }
                for name in &rule.resource_names {
                    out.push(Rule {
                        resource_names: one(name),
                        ..base.clone()
                    });
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Rule::default()
            });
        }
    }
    out
}

/// A rule as upstream's `CompactString` prints it in escalation messages
/// (`{APIGroups:["apps"], Resources:["deployments"], Verbs:["create"]}`).
pub fn compact(rule: &Rule) -> String {
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(" "))
    };
    let mut parts = Vec::new();
    for (name, values) in [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ] {
        if !values.is_empty() {
            parts.push(format!("{name}:{}", list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: Vec::new(),
        }
    }

    fn url_rule(verbs: &[&str], urls: &[&str]) -> Rule {
        Rule {
            verbs: verbs.iter().map(|x| x.to_string()).collect(),
            non_resource_urls: urls.iter().map(|x| x.to_string()).collect(),
            ..Rule::default()
        }
    }

    fn req(method: Method, path: &str) -> RequestInfo {
        RequestInfo::new(&method, path, None)
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let pods = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(pods.allows(&req(Method::GET, "/api/v1/namespaces/a/pods")));
        assert!(pods.allows(&req(Method::GET, "/api/v1/namespaces/a/pods/p")));
        assert!(!pods.allows(&req(Method::GET, "/api/v1/namespaces/a/pods/p/log")));
        assert!(!pods.allows(&req(Method::POST, "/api/v1/namespaces/a/pods")));
        assert!(!pods.allows(&req(Method::GET, "/apis/apps/v1/namespaces/a/deployments")));
        let scale = rule(&["*"], &["*"], &["*/scale"], &[]);
        assert!(scale.allows(&req(
            Method::PUT,
            "/apis/apps/v1/namespaces/a/deployments/d/scale"
        )));
        assert!(!scale.allows(&req(
            Method::PUT,
            "/apis/apps/v1/namespaces/a/deployments/d"
        )));
        let log = rule(&["get"], &[""], &["pods/log"], &["web"]);
        assert!(log.allows(&req(Method::GET, "/api/v1/namespaces/a/pods/web/log")));
        assert!(!log.allows(&req(Method::GET, "/api/v1/namespaces/a/pods/db/log")));
        let everything = rule(&["*"], &["*"], &["*"], &[]);
        assert!(everything.allows(&req(Method::DELETE, "/api/v1/nodes/n")));
        assert!(!everything.allows(&req(Method::GET, "/healthz")));
    }

    #[test]
    fn urls_match_exactly_or_by_star_prefix() {
        let r = url_rule(&["get"], &["/healthz", "/api/*"]);
        assert!(r.allows(&req(Method::GET, "/healthz")));
        assert!(!r.allows(&req(Method::GET, "/healthz/ping")));
        assert!(r.allows(&req(Method::GET, "/api/v1")));
        assert!(!r.allows(&req(Method::POST, "/api/v1")));
        assert!(url_rule(&["*"], &["*"]).allows(&req(Method::GET, "/anything")));
    }

    #[test]
    fn held_rules_cover_narrower_ones_only() {
        let admin = rule(&["*"], &["*"], &["*"], &[]);
        let view = rule(&["get", "list", "watch"], &[""], &["pods", "pods/log"], &[]);
        let wanted_view = [rule(&["get"], &[""], &["pods"], &["web"])];
        assert!(uncovered(&[&admin], &wanted_view).is_empty());
        assert!(uncovered(&[&view], &wanted_view).is_empty());
        let wanted = [rule(&["get", "create"], &["", "apps"], &["pods"], &[])];
        let missing = uncovered(&[&view], &wanted);
        let printed: Vec<String> = missing.iter().map(compact).collect();
        assert_eq!(
            printed,
            [
                "{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\"]}",
                "{APIGroups:[\"apps\"], Resources:[\"pods\"], Verbs:[\"get\" \"create\"]}",
            ]
        );
        // A wildcard is only covered by a wildcard.
        assert_eq!(
            uncovered(&[&view], &[rule(&["get"], &[""], &["*"], &[])]).len(),
            1
        );
        // A name-restricted rule does not cover every name.
        let named = rule(&["get"], &[""], &["pods"], &["web"]);
        assert_eq!(
            uncovered(&[&named], &[rule(&["get"], &[""], &["pods"], &[])]).len(),
            1
        );
        let urls = url_rule(&["get"], &["/api/*"]);
        assert!(uncovered(&[&urls], &[url_rule(&["get"], &["/api/v1"])]).is_empty());
        assert_eq!(
            uncovered(&[&urls], &[url_rule(&["get"], &["/healthz"])]).len(),
            1
        );
    }
}
