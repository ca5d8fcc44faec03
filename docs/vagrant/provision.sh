#!/usr/bin/env bash
# Provisions one VM of docs/vagrant (untested; see the Vagrantfile).
# Usage: provision.sh ROLE_OR_NODE_NAME IP CONTROL_PLANE_IP
#
# `cp` runs `skiff server` (the control plane alone); it prints a join
# token, the CA's hash and the `skiff agent` line, which is handed to the
# other VMs through the synced folder (/skiff/target/vagrant-join). Every
# other VM runs that `skiff agent` line: a kubelet with its own containerd
# that joins with the token, pinning the CA by hash, and keeps its node
# certificates in /var/lib/skiff/agent. That token lasts 24 h: for a VM
# provisioned later, first run on cp
#   skiff token create --print-join-command --data-dir /var/lib/skiff/server > /skiff/target/vagrant-join
set -euo pipefail
name=$1 ip=$2 cp_ip=$3
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq containerd runc busybox-static protobuf-compiler iproute2 nftables conntrack iputils-arping containernetworking-plugins build-essential curl git
# `skiff agent` runs its own containerd; the packaged one is not needed.
systemctl disable --now containerd || true
if ! command -v cargo >/dev/null; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
source "$HOME/.cargo/env"
# The repository is synced at /skiff (see the Vagrantfile).
cd /skiff
cargo build --release --workspace --bins
install -m 0755 target/release/skiff target/release/skiff-control-plane target/release/skiff-kubelet \
  target/release/skiff-cri-logger target/release/skiff-images /usr/local/bin/
join=/skiff/target/vagrant-join

# LoadBalancer addresses come from .200-.249 of the private network (the
# nodes announce them there); pods get 10.244.<n>.0/24 per node, routed
# node to node over the private network; cluster DNS answers on the
# control-plane VM at port 6445 (the API's + 2), published as kube-dns at
# 10.96.0.10.
if [[ $name == cp ]]; then
  cat > /etc/systemd/system/skiff-server.service <<UNIT
[Unit]
Description=Skiff server (control plane)
After=network-online.target
[Service]
ExecStart=/usr/local/bin/skiff server --data-dir /var/lib/skiff/server --advertise-address ${cp_ip} --load-balancer-pool 192.168.56.200-192.168.56.249
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now skiff-server
  # The agent line, once the server printed it.
  for _ in $(seq 1 120); do
    line=$(journalctl -u skiff-server -o cat --no-pager | grep '^skiff agent --server' | tail -n 1 || true)
    [[ -n $line ]] && break
    sleep 1
  done
  [[ -n $line ]] || { echo "skiff server printed no agent line" >&2; exit 1; }
  echo "$line" > "$join"
  cp /var/lib/skiff/server/kubeconfig /skiff/target/vagrant-kubeconfig
else
  for _ in $(seq 1 600); do [[ -s $join ]] && break; sleep 1; done
  [[ -s $join ]] || { echo "no $join: provision cp first" >&2; exit 1; }
  agent=$(cat "$join")
  cat > /etc/systemd/system/skiff-agent.service <<UNIT
[Unit]
Description=Skiff agent (node)
After=network-online.target
[Service]
ExecStart=/usr/local/bin/${agent} --node-name ${name} --node-ip ${ip}
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now skiff-agent
fi
