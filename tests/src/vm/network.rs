//! The lab's private network on the host: a bridge holding the host's
//! address (`192.168.56.1/24`, the Vagrant lab's network), one tap per
//! machine on it, and an nftables table that drops anything forwarded
//! between the bridge and any other interface, so no machine reaches
//! beyond this host (the machines have no default route either). The host
//! reaches NodePorts and LoadBalancer addresses as a lab client on the
//! same LAN would.

use std::net::Ipv4Addr;
use std::process::Command;

/// The bridge (and the nftables table) name.
pub const BRIDGE: &str = "skiffvm0";

/// The lab network's first three octets; `.1` is the host.
pub const PREFIX: [u8; 3] = [192, 168, 56];

/// The lab network on the host; removed on drop.
#[derive(Debug)]
pub struct HostNetwork {
    taps: Vec<String>,
}

impl HostNetwork {
    /// Creates the bridge and the isolating table, after removing what a
    /// killed earlier run may have left.
    pub fn create() -> Self {
        remove_leftovers();
        if let Some(route) = existing_route() {
            panic!(
                "{}.0/24 is already routed on this host ({route}): the VM lab needs it",
                dotted()
            );
        }
        let network = Self { taps: Vec::new() };
        ip(&["link", "add", BRIDGE, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}/24", host_ip()), "dev", BRIDGE]);
        ip(&["link", "set", BRIDGE, "up"]);
        let table = format!(
            "table inet {BRIDGE} {{
  chain forward {{
    type filter hook forward priority -10; policy accept;
    iifname \"{BRIDGE}\" oifname != \"{BRIDGE}\" drop
    oifname \"{BRIDGE}\" iifname != \"{BRIDGE}\" drop
  }}
}}
"
        );
        nft(&table);
        network
    }

    /// Adds a tap for machine `name` (at most 10 characters) to the bridge.
    pub fn add_tap(&mut self, name: &str) -> String {
        let tap = format!("skvm-{name}");
        ip(&["tuntap", "add", "dev", &tap, "mode", "tap"]);
        self.taps.push(tap.clone());
        ip(&["link", "set", &tap, "master", BRIDGE]);
        ip(&["link", "set", &tap, "up"]);
        tap
    }

    /// The host's address on the lab network.
    pub fn host_ip(&self) -> Ipv4Addr {
        host_ip()
    }
}

impl Drop for HostNetwork {
    fn drop(&mut self) {
        for tap in &self.taps {
            let _ = quiet(&["link", "del", tap]);
        }
        remove_leftovers();
    }
}

/// Address `.host` of the lab network.
pub fn lab_ip(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(PREFIX[0], PREFIX[1], PREFIX[2], host)
}

fn host_ip() -> Ipv4Addr {
    lab_ip(1)
}

fn dotted() -> String {
    format!("{}.{}.{}", PREFIX[0], PREFIX[1], PREFIX[2])
}

/// A route to the lab network that is not this harness's bridge.
fn existing_route() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", &format!("{}.0/24", dotted())])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The bridge, its taps and the table, whoever made them.
fn remove_leftovers() {
    if let Ok(links) = std::fs::read_dir("/sys/class/net") {
        for link in links.flatten() {
            let name = link.file_name().to_string_lossy().to_string();
            if name.starts_with("skvm-") {
                let _ = quiet(&["link", "del", &name]);
            }
        }
    }
    let _ = quiet(&["link", "del", BRIDGE]);
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", BRIDGE])
        .stderr(std::process::Stdio::null())
        .status();
}

fn quiet(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nft(ruleset: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ruleset.as_bytes())
        .expect("write the ruleset");
    let out = child.wait_with_output().expect("nft");
    assert!(
        out.status.success(),
        "nft -f: {}\n{ruleset}",
        String::from_utf8_lossy(&out.stderr)
    );
}
