//! A pod's DNS settings (`dnsPolicy`, `dnsConfig`) as the API server
//! validates them (`validateDNSPolicy`, `validatePodDNSConfig`), and the
//! limits the kubelet also applies when it writes a pod's resolv.conf.

use k8s_openapi::api::core::v1::PodSpec;

use crate::metadata::{dns1123_subdomain_with_underscore_errors, go_quote};
use crate::net::NOT_AN_IP;
use crate::node::go_strings;

/// Most nameservers a resolv.conf may list (glibc's `MAXNS`).
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// Most search domains (upstream's limit since `ExpandedDNSConfig`).
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// Most characters of the search line, spaces between domains included.
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// The policies in the order upstream lists them in its message.
pub const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// Whether `value` is an IP address as Go's `ParseIPSloppy` reads one.
/// Upstream validates `dnsConfig.nameservers` as a legacy IP field and its
/// strict mode (`StrictIPCIDRValidation`) is off by default, so IPv4 octets
/// with leading zeros and IPv4-mapped IPv6 addresses pass there too.
fn is_sloppy_ip(value: &str) -> bool {
    if value.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let octets: Vec<&str> = value.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()) && {
                let digits = o.trim_start_matches('0');
                digits.len() <= 3
                    && digits
                        .parse::<u16>()
                        .map_or(digits.is_empty(), |n| n <= 255)
            }
        })
}

/// Every problem with the pod spec's `dnsPolicy` and `dnsConfig` at `path`
/// (`spec` or a template's `spec.template.spec`), in upstream's order and
/// wording. A missing or empty `dnsPolicy` is `ClusterFirst` (the
/// defaulting the API server does before validating).
pub fn validate_pod_dns(path: &str, spec: &PodSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let policy = spec
        .dns_policy
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("ClusterFirst");
    if !DNS_POLICIES.contains(&policy) {
        let supported: Vec<String> = DNS_POLICIES.iter().map(|p| go_quote(p)).collect();
        errors.push(format!(
            "{path}.dnsPolicy: Unsupported value: {}: supported values: {}",
            go_quote(policy),
            supported.join(", ")
        ));
    }
    let config_path = format!("{path}.dnsConfig");
    let config = spec.dns_config.as_ref();
    if policy == "None" {
        let Some(config) = config else {
            errors.push(format!(
                "{config_path}: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
            ));
            return errors;
        };
        if config.nameservers.as_ref().is_none_or(|n| n.is_empty()) {
            errors.push(format!(
                "{config_path}.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
            ));
            return errors;
        }
    }
    let Some(config) = config else {
        return errors;
    };
    let nameservers = config.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > MAX_DNS_NAMESERVERS {
        let values: Vec<&str> = nameservers.iter().map(String::as_str).collect();
        errors.push(format!(
            "{config_path}.nameservers: Invalid value: {}: must not have more than {MAX_DNS_NAMESERVERS} nameservers",
            go_strings(&values)
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if !is_sloppy_ip(ns) {
            errors.push(format!(
                "{config_path}.nameservers[{i}]: Invalid value: {}: {NOT_AN_IP}",
                go_quote(ns)
            ));
        }
    }
    let searches = config.searches.as_deref().unwrap_or_default();
    let values: Vec<&str> = searches.iter().map(String::as_str).collect();
    if searches.len() > MAX_DNS_SEARCH_PATHS {
        errors.push(format!(
            "{config_path}.searches: Invalid value: {}: must not have more than {MAX_DNS_SEARCH_PATHS} search paths",
            go_strings(&values)
        ));
    }
    if values.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        errors.push(format!(
            "{config_path}.searches: Invalid value: {}: must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including spaces) in the search list",
            go_strings(&values)
        ));
    }
    // Relaxed search validation (upstream's RelaxedDNSSearchValidation, on
    // by default since 1.33): "." alone is allowed, a trailing dot is
    // ignored and '_' may appear, as in SRV-style domains.
    for (i, search) in searches.iter().enumerate() {
        if search == "." {
            continue;
        }
        let trimmed = search.strip_suffix('.').unwrap_or(search);
        for message in dns1123_subdomain_with_underscore_errors(trimmed) {
            errors.push(format!(
                "{config_path}.searches[{i}]: Invalid value: {}: {message}",
                go_quote(trimmed)
            ));
        }
    }
    for (i, option) in config.options.iter().flatten().enumerate() {
        if option.name.as_deref().is_none_or(str::is_empty) {
            errors.push(format!(
                "{config_path}.options[{i}]: Required value: must not be empty"
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        let mut spec: PodSpec = serde_yaml::from_str(yaml).expect("yaml");
        spec.containers = Vec::new();
        spec
    }

    fn errors(yaml: &str) -> Vec<String> {
        validate_pod_dns("spec", &spec(yaml))
    }

    #[test]
    fn the_book_s_none_pod_is_valid() {
        // sample-externaldns.yaml of the Korean notes' textbook.
        assert_eq!(
            errors(
                "{dnsPolicy: None, dnsConfig: {nameservers: [8.8.8.8, 8.8.4.4], searches: [example.com], options: [{name: ndots, value: '5'}]}}"
            ),
            Vec::<String>::new()
        );
        for policy in DNS_POLICIES {
            let yaml = format!("{{dnsPolicy: {policy}, dnsConfig: {{nameservers: [1.1.1.1]}}}}");
            assert_eq!(errors(&yaml), Vec::<String>::new(), "{policy}");
        }
        assert_eq!(errors("{}"), Vec::<String>::new());
        assert_eq!(errors("{dnsPolicy: ''}"), Vec::<String>::new());
    }

    #[test]
    fn unknown_policies_list_upstream_s_values_in_its_order() {
        assert_eq!(
            errors("{dnsPolicy: ClusterLast}"),
            [
                "spec.dnsPolicy: Unsupported value: \"ClusterLast\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""
            ]
        );
    }

    #[test]
    fn none_needs_a_config_with_a_nameserver() {
        assert_eq!(
            errors("{dnsPolicy: None}"),
            ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
        );
        assert_eq!(
            errors("{dnsPolicy: None, dnsConfig: {searches: [BAD_]}}"),
            [
                "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
            ]
        );
        // Other policies take a config without nameservers.
        assert_eq!(
            errors("{dnsPolicy: ClusterFirst, dnsConfig: {searches: [a.b]}}"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn nameservers_are_counted_and_must_be_addresses() {
        assert_eq!(
            errors("{dnsConfig: {nameservers: [1.1.1.1, 2.2.2.2, 3.3.3.3, '::1']}}"),
            [
                "spec.dnsConfig.nameservers: Invalid value: []string{\"1.1.1.1\", \"2.2.2.2\", \"3.3.3.3\", \"::1\"}: must not have more than 3 nameservers"
            ]
        );
        assert_eq!(
            errors("{dnsConfig: {nameservers: [dns.google, '1.2.3']}}"),
            [
                "spec.dnsConfig.nameservers[0]: Invalid value: \"dns.google\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.dnsConfig.nameservers[1]: Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ]
        );
        // Go's sloppy parser takes these; upstream's strict mode is off.
        assert_eq!(
            errors("{dnsConfig: {nameservers: ['010.001.002.003', '::ffff:1.2.3.4']}}"),
            Vec::<String>::new()
        );
        assert!(!is_sloppy_ip("256.1.1.1"));
        assert!(!is_sloppy_ip("1.1.1.0256"));
    }

    #[test]
    fn searches_are_counted_measured_and_must_be_subdomains() {
        let many: Vec<String> = (0..33).map(|i| format!("d{i}.example.com")).collect();
        let yaml = format!("{{dnsConfig: {{searches: [{}]}}}}", many.join(", "));
        let quoted: Vec<String> = many.iter().map(|d| format!("\"{d}\"")).collect();
        assert_eq!(
            errors(&yaml),
            [format!(
                "spec.dnsConfig.searches: Invalid value: []string{{{}}}: must not have more than 32 search paths",
                quoted.join(", ")
            )]
        );
        // 11 domains of 193 characters: 2133 with the spaces.
        let long: Vec<String> = (0..11)
            .map(|i| format!("{}{}", i % 10, "a".repeat(62)))
            .map(|l| format!("{l}.{l}.{l}.x"))
            .collect();
        let yaml = format!("{{dnsConfig: {{searches: [{}]}}}}", long.join(", "));
        let got = errors(&yaml);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].ends_with(
                ": must not have more than 2048 characters (including spaces) in the search list"
            ),
            "{got:#?}"
        );
        assert_eq!(
            errors(
                "{dnsConfig: {searches: ['.', 'example.com.', '_sip._tcp.example.com', 'Bad.com', 'a..b']}}"
            ),
            [
                "spec.dnsConfig.searches[3]: Invalid value: \"Bad.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')",
                "spec.dnsConfig.searches[4]: Invalid value: \"a..b\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')",
            ]
        );
    }

    #[test]
    fn options_need_a_name() {
        assert_eq!(
            errors("{dnsConfig: {options: [{name: ndots, value: '2'}, {value: '1'}, {name: ''}]}}"),
            [
                "spec.dnsConfig.options[1]: Required value: must not be empty",
                "spec.dnsConfig.options[2]: Required value: must not be empty",
            ]
        );
    }
}
