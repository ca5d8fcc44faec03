#!/usr/bin/env bash
# Quick start: set the machine up, build Skiff, start a 3-node cluster and
# apply a demo manifest with the real kubectl. Ctrl-C stops the cluster and
# removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "==> building Skiff (release)"
cargo build --release --workspace --bins
DATA_DIR=${SKIFF_DATA_DIR:-/tmp/skiff-quickstart}
./target/release/skiff up --nodes 3 --data-dir "$DATA_DIR" &
SKIFF_PID=$!
trap 'kill -INT $SKIFF_PID 2>/dev/null; wait $SKIFF_PID' INT TERM
export KUBECONFIG="$DATA_DIR/kubeconfig"
KUBECTL=.venv/bin/kubectl
for _ in $(seq 120); do
  if [[ -f $KUBECONFIG ]] && [[ $($KUBECTL get nodes --no-headers 2>/dev/null | grep -c ' Ready ') -eq 3 ]]; then break; fi
  sleep 1
done
$KUBECTL get nodes
$KUBECTL apply -f docs/demo.yaml
for _ in $(seq 60); do
  if [[ $($KUBECTL get pods --no-headers 2>/dev/null | grep -c Running) -eq 2 ]]; then break; fi
  sleep 1
done
$KUBECTL get pods -o wide
echo "==> kubectl logs sample-2pod -c client"
$KUBECTL logs sample-2pod -c client
echo "==> kubectl exec sample-workingdir -- pwd"
$KUBECTL exec sample-workingdir -- pwd
echo
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG and use $KUBECTL. Ctrl-C stops it."
wait $SKIFF_PID
