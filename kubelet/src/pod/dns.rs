//! The resolv.conf of a pod, formed as upstream's kubelet forms it
//! (`pkg/kubelet/network/dns/dns.go`) and written as containerd's CRI
//! writes the sandbox's copy (search, nameserver and options lines).
//!
//! - `ClusterFirst`: the cluster DNS servers, the pod's namespace, `svc`
//!   and cluster-domain search domains before the node's, `options ndots:5`.
//!   A hostNetwork pod falls back to `Default`; so does any pod when the
//!   kubelet knows no cluster DNS server (with upstream's `MissingClusterDNS`
//!   warnings).
//! - `ClusterFirstWithHostNet`: `ClusterFirst`, hostNetwork or not.
//! - `Default`: the node's resolv.conf (`--resolv-conf`); with none,
//!   loopback nameservers and the root search domain, as upstream.
//! - `None`: nothing but the pod's `dnsConfig`.
//!
//! `dnsConfig` is then merged in (nameservers and searches appended without
//! duplicates, options replaced by name) and the result cut to what libc
//! reads: 3 nameservers, 32 search domains of at most 253 characters,
//! 2048 characters of search line; each cut is a `DNSConfigForming`
//! warning with upstream's wording.
//!
//! Everything here is pure: the node's resolv.conf comes in as text.

use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};
use skiff_api_rules::dns::{MAX_DNS_NAMESERVERS, MAX_DNS_SEARCH_LIST_CHARS, MAX_DNS_SEARCH_PATHS};

/// Upstream's default options for cluster DNS (`defaultDNSOptions`).
const CLUSTER_OPTIONS: &str = "ndots:5";
/// Longest search domain glibc copes with (some versions abort past it).
const MAX_SEARCH_DOMAIN_LEN: usize = 253;
/// Upstream reads at most this much of the node's resolv.conf.
pub const MAX_RESOLV_CONF_BYTES: u64 = 10 << 20;

/// The node's DNS settings, from the kubelet's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDns {
    /// `--cluster-dns`: the cluster DNS servers (none: `ClusterFirst` pods
    /// fall back to `Default`).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain` (`cluster.local`; empty: no cluster search domains).
    pub cluster_domain: String,
    /// `--resolv-conf`: the node's resolv.conf, the base of `Default` and
    /// the search domains after the cluster's (`None`: `""`, none at all).
    pub resolv_conf: Option<PathBuf>,
    /// The node's addresses, for the loopback nameservers of `Default`
    /// without a resolv.conf (`::1` for an IPv6 node address).
    pub node_ips: Vec<IpAddr>,
}

impl Default for NodeDns {
    /// Upstream's defaults, except that no node file is read: what a node
    /// on fakes needs (the binary sets `/etc/resolv.conf`).
    fn default() -> Self {
        Self {
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            resolv_conf: None,
            node_ips: Vec::new(),
        }
    }
}

/// The node's resolv.conf could not be read as upstream reads it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolvConfError {
    /// A `nameserver` line without an address (upstream's wording).
    #[error("nameserver list is empty ")]
    EmptyNameserver,
}

/// A parsed resolv.conf: nameserver lines accumulate, the last `search`
/// and the last `options` line win, `#` comments are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    /// `nameserver` addresses, in order.
    pub nameservers: Vec<String>,
    /// Search domains (trailing dots dropped, so `a.` and `a` count once).
    pub searches: Vec<String>,
    /// Options as written (`ndots:2`, `rotate`).
    pub options: Vec<String>,
}

impl Resolver {
    /// Reads a resolv.conf as upstream's `parseResolvConf` does.
    pub fn parse(text: &str) -> Result<Self, ResolvConfError> {
        let mut parsed = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                ["nameserver"] => return Err(ResolvConfError::EmptyNameserver),
                ["nameserver", address, ..] => parsed.nameservers.push((*address).to_string()),
                ["search", domains @ ..] => {
                    parsed.searches = domains
                        .iter()
                        .map(|d| d.strip_suffix('.').unwrap_or(d).to_string())
                        .collect();
                }
                ["options", options @ ..] => {
                    parsed.options = options.iter().map(|o| (*o).to_string()).collect();
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// The file as containerd's CRI writes a sandbox's resolv.conf: the
    /// search line, one line per nameserver, the options line, each only
    /// when not empty (an empty configuration gives an empty file).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// What upstream's `CheckLimitsForResolvConf` warns about the node's
/// resolv.conf at `path`, read as `read` (the file, or why it could not be
/// read): search lines that pods would get cut, with the cluster's three
/// domains counted in when there is a cluster domain.
pub fn node_file_warning(
    node: &NodeDns,
    path: &std::path::Path,
    read: Result<Resolver, String>,
) -> Option<String> {
    let host = match read {
        Ok(host) => host,
        Err(e) => return Some(e),
    };
    let shown = path.display().to_string();
    let mut domains = MAX_DNS_SEARCH_PATHS;
    if !node.cluster_domain.is_empty() {
        domains -= 3;
    }
    if host.searches.len() > domains {
        return Some(format!(
            "Resolv.conf file '{shown}' contains search line consisting of more than {domains} domains!"
        ));
    }
    if host
        .searches
        .iter()
        .any(|s| s.len() > MAX_SEARCH_DOMAIN_LEN)
    {
        return Some(format!(
            "Resolv.conf file {shown:?} contains a search path which length is more than allowed {MAX_SEARCH_DOMAIN_LEN} chars!"
        ));
    }
    if host.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        return Some(format!(
            "Resolv.conf file '{shown}' contains search line which length is more than allowed {MAX_DNS_SEARCH_LIST_CHARS} chars!"
        ));
    }
    None
}

/// A warning to report while forming a pod's resolv.conf, worded as
/// upstream's kubelet words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsWarning {
    /// `MissingClusterDNS` or `DNSConfigForming`.
    pub reason: &'static str,
    /// The event's message.
    pub message: String,
    /// About the node rather than the pod (upstream sends
    /// `MissingClusterDNS` to both).
    pub on_node: bool,
}

/// A pod's resolver configuration and what to warn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDns {
    /// What goes into the pod's `/etc/resolv.conf`.
    pub resolver: Resolver,
    /// Warnings, in the order upstream records them.
    pub warnings: Vec<DnsWarning>,
}

/// Which base a pod's resolver starts from (upstream's `podDNSType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Cluster,
    Host,
    Nothing,
}

fn base_of(pod: &Pod) -> Base {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("") {
        "None" => Base::Nothing,
        "ClusterFirstWithHostNet" => Base::Cluster,
        "Default" => Base::Host,
        // ClusterFirst, and the empty policy the API server defaults to it;
        // anything else was refused by validation, and upstream falls back
        // to ClusterFirst for it too.
        _ if host_network => Base::Host,
        _ => Base::Cluster,
    }
}

/// `name_namespace(uid)`, upstream's `format.Pod`.
fn pod_label(pod: &Pod) -> String {
    let meta = &pod.metadata;
    format!(
        "{}_{}({})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    )
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Options merged by name, `dnsConfig`'s winning. Upstream goes through a
/// Go map, so its order is random; here the existing order is kept and new
/// names come after, so the file is the same on every start.
fn merge_options(existing: &[String], extra: &PodDNSConfig) -> Vec<String> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match merged.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_string(),
        None => merged.push((name.to_string(), value.to_string())),
    };
    for option in existing {
        let (name, value) = option.split_once(':').unwrap_or((option, ""));
        set(name, value);
    }
    for option in extra.options.iter().flatten() {
        set(
            option.name.as_deref().unwrap_or_default(),
            option.value.as_deref().unwrap_or_default(),
        );
    }
    merged
        .into_iter()
        .map(|(name, value)| {
            if value.is_empty() {
                name
            } else {
                format!("{name}:{value}")
            }
        })
        .collect()
}

/// Search domains cut to the limits as upstream's
/// `formDNSSearchFitsLimits` cuts them: the first 32, without domains
/// longer than 253 characters, then from the end until the line fits.
fn fit_searches(searches: Vec<String>, warnings: &mut Vec<DnsWarning>) -> Vec<String> {
    let mut exceeded = searches.len() > MAX_DNS_SEARCH_PATHS;
    let mut fitted: Vec<String> = searches.into_iter().take(MAX_DNS_SEARCH_PATHS).collect();
    let before = fitted.len();
    fitted.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_LEN);
    exceeded |= fitted.len() != before;
    let mut line = fitted.join(" ").len();
    while line > MAX_DNS_SEARCH_LIST_CHARS {
        // One domain and the space before it.
        line = line.saturating_sub(fitted.pop().map_or(0, |s| s.len() + 1));
        exceeded = true;
    }
    if exceeded {
        warnings.push(DnsWarning {
            reason: "DNSConfigForming",
            message: format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                fitted.join(" ")
            ),
            on_node: false,
        });
    }
    fitted
}

fn fit_nameservers(mut nameservers: Vec<String>, warnings: &mut Vec<DnsWarning>) -> Vec<String> {
    if nameservers.len() > MAX_DNS_NAMESERVERS {
        nameservers.truncate(MAX_DNS_NAMESERVERS);
        warnings.push(DnsWarning {
            reason: "DNSConfigForming",
            message: format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                nameservers.join(" ")
            ),
            on_node: false,
        });
    }
    nameservers
}

/// The resolver of `pod` on a node with `node` settings, whose
/// resolv.conf (`--resolv-conf`) read as `host` (empty without one).
pub fn pod_dns(node: &NodeDns, host: &Resolver, pod: &Pod) -> PodDns {
    let mut warnings = Vec::new();
    let mut resolver = host.clone();
    let mut base = base_of(pod);
    if base == Base::Cluster && node.cluster_dns.is_empty() {
        let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
        warnings.push(DnsWarning {
            reason: "MissingClusterDNS",
            message: message.into(),
            on_node: true,
        });
        warnings.push(DnsWarning {
            reason: "MissingClusterDNS",
            message: format!("pod: \"{}\". {message}", pod_label(pod)),
            on_node: false,
        });
        base = Base::Host;
    }
    match base {
        Base::Nothing => resolver = Resolver::default(),
        Base::Cluster => {
            // The cluster DNS server is the only one: it forwards what it
            // cannot answer itself.
            resolver.nameservers = node.cluster_dns.iter().map(IpAddr::to_string).collect();
            if !node.cluster_domain.is_empty() {
                let domain = &node.cluster_domain;
                let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                let mut searches = vec![
                    format!("{namespace}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.clone(),
                ];
                push_unique(&mut searches, std::mem::take(&mut resolver.searches));
                resolver.searches = searches;
            }
            resolver.options = vec![CLUSTER_OPTIONS.to_string()];
        }
        Base::Host => {
            // Without a node resolv.conf, upstream points the pod at the
            // resolver "on the local machine" (bind's behaviour without
            // nameservers) and searches nothing but the root.
            if node.resolv_conf.is_none() {
                resolver.nameservers = node
                    .node_ips
                    .iter()
                    .map(|ip| if ip.is_ipv6() { "::1" } else { "127.0.0.1" }.to_string())
                    .collect();
                if resolver.nameservers.is_empty() {
                    resolver.nameservers.push("127.0.0.1".into());
                }
                resolver.searches = vec![".".into()];
            }
        }
    }
    if let Some(config) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        // Upstream de-duplicates the whole lists, the base's own repeats too.
        let mut nameservers = std::mem::take(&mut resolver.nameservers);
        nameservers.extend(config.nameservers.iter().flatten().cloned());
        push_unique(&mut resolver.nameservers, nameservers);
        let mut searches = std::mem::take(&mut resolver.searches);
        searches.extend(config.searches.iter().flatten().cloned());
        push_unique(&mut resolver.searches, searches);
        resolver.options = merge_options(&resolver.options, config);
    }
    resolver.nameservers = fit_nameservers(resolver.nameservers, &mut warnings);
    resolver.searches = fit_searches(resolver.searches, &mut warnings);
    PodDns { resolver, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# from DHCP\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example. lab.example\noptions ndots:1 timeout:2\n";

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("pod yaml")
    }

    fn cluster_node() -> NodeDns {
        NodeDns {
            cluster_dns: vec!["10.96.0.10".parse().expect("ip")],
            cluster_domain: "cluster.local".into(),
            resolv_conf: Some("/etc/resolv.conf".into()),
            node_ips: vec!["192.168.1.10".parse().expect("ip")],
        }
    }

    fn host() -> Resolver {
        Resolver::parse(HOST).expect("host resolv.conf")
    }

    fn file(node: &NodeDns, host: &Resolver, yaml: &str) -> String {
        let formed = pod_dns(node, host, &pod(yaml));
        assert_eq!(formed.warnings, Vec::new());
        formed.resolver.render()
    }

    #[test]
    fn the_node_file_is_read_as_upstream_reads_it() {
        let parsed = Resolver::parse(
            "nameserver 1.1.1.1\n  # comment\nsearch a.example\nsearch b.example. c.example\ndomain x\noptions rotate\noptions ndots:2 attempts:3\nnameserver 2.2.2.2 extra\n",
        )
        .expect("parse");
        assert_eq!(parsed.nameservers, ["1.1.1.1", "2.2.2.2"]);
        assert_eq!(parsed.searches, ["b.example", "c.example"]);
        assert_eq!(parsed.options, ["ndots:2", "attempts:3"]);
        assert_eq!(
            Resolver::parse("nameserver\n"),
            Err(ResolvConfError::EmptyNameserver)
        );
        assert_eq!(Resolver::parse("").expect("empty"), Resolver::default());
    }

    #[test]
    fn cluster_first_uses_the_cluster_server_and_search_domains_then_the_node_s() {
        assert_eq!(
            file(
                &cluster_node(),
                &host(),
                "metadata: {name: web, namespace: shop}\nspec: {containers: [], dnsPolicy: ClusterFirst}"
            ),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // No policy (a static pod the API server never defaulted) is ClusterFirst.
        assert_eq!(
            file(
                &cluster_node(),
                &Resolver::default(),
                "metadata: {name: web, namespace: default}\nspec: {containers: []}"
            ),
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // Several servers, and the node's search repeating a cluster domain once.
        let mut node = cluster_node();
        node.cluster_dns.push("fd00::a".parse().expect("ip"));
        let host = Resolver::parse("search cluster.local other.example\n").expect("parse");
        assert_eq!(
            file(
                &node,
                &host,
                "metadata: {name: a, namespace: ns}\nspec: {containers: []}"
            ),
            "search ns.svc.cluster.local svc.cluster.local cluster.local other.example\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"
        );
        // No cluster domain: the node's search domains alone.
        node.cluster_domain.clear();
        assert_eq!(
            file(
                &node,
                &host,
                "metadata: {name: a, namespace: ns}\nspec: {containers: []}"
            ),
            "search cluster.local other.example\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"
        );
    }

    #[test]
    fn host_network_pods_take_the_node_s_file_unless_cluster_first_with_host_net() {
        let node_file = "search corp.example lab.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions ndots:1 timeout:2\n";
        assert_eq!(
            file(
                &cluster_node(),
                &host(),
                "metadata: {name: h, namespace: default}\nspec: {containers: [], hostNetwork: true, dnsPolicy: ClusterFirst}"
            ),
            node_file
        );
        assert_eq!(
            file(
                &cluster_node(),
                &host(),
                "metadata: {name: h, namespace: default}\nspec: {containers: [], hostNetwork: true, dnsPolicy: ClusterFirstWithHostNet}"
            ),
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        // Without hostNetwork, ClusterFirstWithHostNet is plain ClusterFirst.
        assert_eq!(
            file(
                &cluster_node(),
                &Resolver::default(),
                "metadata: {name: h, namespace: default}\nspec: {containers: [], dnsPolicy: ClusterFirstWithHostNet}"
            ),
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert_eq!(
            file(
                &cluster_node(),
                &host(),
                "metadata: {name: d, namespace: default}\nspec: {containers: [], dnsPolicy: Default}"
            ),
            node_file
        );
    }

    #[test]
    fn default_without_a_node_file_is_loopback_and_the_root_domain() {
        let mut node = cluster_node();
        node.resolv_conf = None;
        let yaml =
            "metadata: {name: d, namespace: default}\nspec: {containers: [], dnsPolicy: Default}";
        assert_eq!(
            file(&node, &Resolver::default(), yaml),
            "search .\nnameserver 127.0.0.1\n"
        );
        node.node_ips = vec![
            "192.168.1.10".parse().expect("ip"),
            "fd00::10".parse().expect("ip"),
        ];
        assert_eq!(
            file(&node, &Resolver::default(), yaml),
            "search .\nnameserver 127.0.0.1\nnameserver ::1\n"
        );
        node.node_ips.clear();
        assert_eq!(
            file(&node, &Resolver::default(), yaml),
            "search .\nnameserver 127.0.0.1\n"
        );
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back_to_default_with_warnings() {
        let mut node = cluster_node();
        node.cluster_dns.clear();
        let formed = pod_dns(
            &node,
            &host(),
            &pod("metadata: {name: web, namespace: shop, uid: u-1}\nspec: {containers: []}"),
        );
        assert_eq!(
            formed.resolver.render(),
            "search corp.example lab.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions ndots:1 timeout:2\n"
        );
        let message = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.";
        assert_eq!(
            formed.warnings,
            [
                DnsWarning {
                    reason: "MissingClusterDNS",
                    message: message.into(),
                    on_node: true
                },
                DnsWarning {
                    reason: "MissingClusterDNS",
                    message: format!("pod: \"web_shop(u-1)\". {message}"),
                    on_node: false
                },
            ]
        );
        // Default and None pods do not need the cluster's server.
        let formed = pod_dns(
            &node,
            &host(),
            &pod("metadata: {name: d}\nspec: {containers: [], dnsPolicy: Default}"),
        );
        assert_eq!(formed.warnings, Vec::new());
    }

    /// `sample-externaldns.yaml` of the textbook the Korean notes follow
    /// (the notes list the policies; the manifest is the book's).
    #[test]
    fn the_none_pod_gets_exactly_its_dns_config() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: sample-externaldns
spec:
  dnsPolicy: None
  dnsConfig:
    nameservers:
    - 8.8.8.8
    - 8.8.4.4
    searches:
    - example.com
    options:
    - name: ndots
      value: "5"
  containers:
  - name: nginx-container
    image: nginx:1.16
"#;
        assert!(skiff_api_rules::pod::validate_pod(&pod(yaml)).is_empty());
        assert_eq!(
            file(&cluster_node(), &host(), yaml),
            "search example.com\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions ndots:5\n"
        );
        // None with an empty config (other than the required nameserver) is just that.
        assert_eq!(
            file(
                &cluster_node(),
                &host(),
                "metadata: {name: n}\nspec: {containers: [], dnsPolicy: None, dnsConfig: {nameservers: [1.1.1.1]}}"
            ),
            "nameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn dns_config_is_appended_without_duplicates_and_options_merge_by_name() {
        let yaml = r#"
metadata: {name: m, namespace: shop}
spec:
  containers: []
  dnsConfig:
    nameservers: [10.96.0.10, 1.1.1.1]
    searches: [svc.cluster.local, extra.example, extra.example]
    options:
    - {name: ndots, value: "2"}
    - {name: edns0}
    - {name: timeout, value: "3"}
"#;
        assert_eq!(
            file(&cluster_node(), &Resolver::default(), yaml),
            "search shop.svc.cluster.local svc.cluster.local cluster.local extra.example\nnameserver 10.96.0.10\nnameserver 1.1.1.1\noptions ndots:2 edns0 timeout:3\n"
        );
        // The node file's own repeats go too once dnsConfig is merged.
        let repeats =
            Resolver::parse("nameserver 1.1.1.1\nnameserver 1.1.1.1\nsearch a.example a.example\n")
                .expect("parse");
        assert_eq!(
            file(
                &cluster_node(),
                &repeats,
                "metadata: {name: m}\nspec: {containers: [], dnsPolicy: Default, dnsConfig: {nameservers: [1.1.1.1]}}"
            ),
            "search a.example\nnameserver 1.1.1.1\n"
        );
        // On the node's file, dnsConfig's options replace the node's by name.
        let yaml = "metadata: {name: m}\nspec: {containers: [], dnsPolicy: Default, dnsConfig: {options: [{name: timeout, value: '5'}, {name: rotate}]}}";
        assert_eq!(
            file(&cluster_node(), &host(), yaml),
            "search corp.example lab.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions ndots:1 timeout:5 rotate\n"
        );
    }

    #[test]
    fn nameservers_past_three_are_cut_with_a_warning() {
        let yaml = "metadata: {name: m}\nspec: {containers: [], dnsPolicy: Default, dnsConfig: {nameservers: [9.9.9.9, 8.8.8.8]}}";
        let formed = pod_dns(&cluster_node(), &host(), &pod(yaml));
        assert_eq!(
            formed.resolver.nameservers,
            ["192.168.1.1", "192.168.1.2", "9.9.9.9"]
        );
        assert_eq!(
            formed.warnings,
            [DnsWarning {
                reason: "DNSConfigForming",
                message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 192.168.1.1 192.168.1.2 9.9.9.9".into(),
                on_node: false
            }]
        );
    }

    #[test]
    fn search_domains_are_cut_to_32_then_long_ones_dropped_then_to_2048_characters() {
        // 30 node domains after the 3 cluster ones: the last is cut.
        let node_domains: Vec<String> = (0..30).map(|i| format!("d{i}.example")).collect();
        let host = Resolver {
            searches: node_domains.clone(),
            ..Resolver::default()
        };
        let formed = pod_dns(
            &cluster_node(),
            &host,
            &pod("metadata: {name: s, namespace: a}\nspec: {containers: []}"),
        );
        assert_eq!(formed.resolver.searches.len(), 32);
        assert_eq!(
            formed.resolver.searches.last().map(String::as_str),
            Some("d28.example")
        );
        assert_eq!(formed.warnings.len(), 1);
        assert_eq!(
            formed.warnings[0].message,
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                formed.resolver.searches.join(" ")
            )
        );

        // A domain past 253 characters is dropped wherever it is.
        let long = format!("{}.example", "a".repeat(250));
        let host = Resolver {
            searches: vec![long, "ok.example".into()],
            ..Resolver::default()
        };
        let formed = pod_dns(
            &cluster_node(),
            &host,
            &pod("metadata: {name: s, namespace: a}\nspec: {containers: [], dnsPolicy: Default}"),
        );
        assert_eq!(formed.resolver.searches, ["ok.example"]);
        assert_eq!(formed.warnings.len(), 1);

        // 12 domains of 200 characters: 2411 with spaces; cut from the end
        // to 10 (2009 characters).
        let big: Vec<String> = (0..12)
            .map(|i| format!("{}{i:02}.example", "b".repeat(190)))
            .collect();
        assert!(big.iter().all(|d| d.len() == 200));
        let host = Resolver {
            searches: big.clone(),
            ..Resolver::default()
        };
        let formed = pod_dns(
            &cluster_node(),
            &host,
            &pod("metadata: {name: s}\nspec: {containers: [], dnsPolicy: Default}"),
        );
        assert_eq!(formed.resolver.searches, big[..10]);
        assert_eq!(formed.resolver.searches.join(" ").len(), 2009);
        assert_eq!(formed.warnings.len(), 1);
    }

    #[test]
    fn the_node_file_is_checked_against_the_limits_as_upstream_checks_it() {
        let path = std::path::Path::new("/etc/resolv.conf");
        let node = cluster_node();
        let with = |searches: Vec<String>| {
            node_file_warning(
                &node,
                path,
                Ok(Resolver {
                    searches,
                    ..Resolver::default()
                }),
            )
        };
        assert_eq!(with(vec!["a.example".into()]), None);
        let thirty: Vec<String> = (0..30).map(|i| format!("d{i}.example")).collect();
        assert_eq!(
            with(thirty.clone()).as_deref(),
            Some(
                "Resolv.conf file '/etc/resolv.conf' contains search line consisting of more than 29 domains!"
            )
        );
        let mut no_domain = node.clone();
        no_domain.cluster_domain.clear();
        assert_eq!(
            node_file_warning(
                &no_domain,
                path,
                Ok(Resolver {
                    searches: thirty,
                    ..Resolver::default()
                })
            ),
            None
        );
        assert_eq!(
            with(vec!["a".repeat(254)]).as_deref(),
            Some(
                "Resolv.conf file \"/etc/resolv.conf\" contains a search path which length is more than allowed 253 chars!"
            )
        );
        assert_eq!(
            with((0..10).map(|i| format!("{}{i}", "b".repeat(249))).collect()).as_deref(),
            Some(
                "Resolv.conf file '/etc/resolv.conf' contains search line which length is more than allowed 2048 chars!"
            )
        );
        assert_eq!(
            node_file_warning(&node, path, Err("open /etc/resolv.conf: gone".into())).as_deref(),
            Some("open /etc/resolv.conf: gone")
        );
    }

    #[test]
    fn an_empty_configuration_is_an_empty_file() {
        assert_eq!(Resolver::default().render(), "");
    }
}
