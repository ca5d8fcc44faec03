#!/usr/bin/env bash
# Provisions one VM of docs/vagrant (untested; see the Vagrantfile).
# Usage: provision.sh ROLE_OR_NODE_NAME IP CONTROL_PLANE_IP
set -euo pipefail
name=$1 ip=$2 cp_ip=$3
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq containerd runc busybox-static protobuf-compiler iproute2 nftables conntrack iputils-arping containernetworking-plugins build-essential curl git
if ! command -v cargo >/dev/null; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
source "$HOME/.cargo/env"
# The repository is synced at /skiff (see the Vagrantfile).
cd /skiff
cargo build --release --workspace --bins
install -m 0755 target/release/skiff-control-plane target/release/skiff-kubelet \
  target/release/skiff-cri-logger target/release/skiff-images /usr/local/bin/
mkdir -p /var/lib/skiff

# LoadBalancer addresses come from .200-.249 of the private network (the
# nodes announce them there); pods get 10.244.<n>.0/24 per node, routed
# node to node over the private network; cluster DNS answers on the
# control-plane VM, published as kube-dns at 10.96.0.10.
if [[ $name == cp ]]; then
  cat > /etc/systemd/system/skiff-control-plane.service <<UNIT
[Unit]
Description=Skiff control plane
After=network-online.target
[Service]
ExecStart=/usr/local/bin/skiff-control-plane --data-dir /var/lib/skiff --listen 0.0.0.0:6443 --grpc-listen 0.0.0.0:6444 --advertise-address ${cp_ip} --load-balancer-pool 192.168.56.200-192.168.56.249 --cluster-dns-listen ${cp_ip}:53
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
  systemctl daemon-reload
  systemctl enable --now skiff-control-plane
  # The kubeconfig names the listen address; point it at the VM's address.
  sleep 2
  sed -i "s#http://0.0.0.0:6443#http://${cp_ip}:6443#" /var/lib/skiff/kubeconfig
else
  skiff-images build --out /var/lib/skiff/images
  cat > /etc/systemd/system/skiff-kubelet.service <<UNIT
[Unit]
Description=Skiff kubelet
After=containerd.service network-online.target
Requires=containerd.service
[Service]
ExecStart=/usr/local/bin/skiff-kubelet --node-name ${name} --containerd-socket /run/containerd/containerd.sock --containerd-namespace skiff --state-dir /var/lib/skiff/kubelet --image-dir /var/lib/skiff/images --manifests-dir /etc/skiff/manifests --grpc-listen ${ip}:10250 --http-listen ${ip}:10255 --node-ip ${ip} --control-plane ${cp_ip}:6444 --cri-logger /usr/local/bin/skiff-cri-logger --pod-network cni --cluster-dns 10.96.0.10
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
  mkdir -p /etc/skiff/manifests
  systemctl daemon-reload
  systemctl enable --now skiff-kubelet
fi
