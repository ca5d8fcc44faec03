#!/usr/bin/env bash
# Runs Skiff's benchmarks (root and containerd required; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
cargo bench -p skiff-tests --bench runtime_vs_ctr "$@"
cargo bench -p skiff-tests --bench kubelet_latency "$@"
cargo bench -p skiff-tests --bench control_plane_store "$@"
cargo bench -p skiff-tests --bench cluster_latency "$@"
cargo bench -p skiff-tests --bench scheduler_throughput "$@"
SKIFF_BENCH_RELEASE=start cargo bench -p skiff-tests --bench scheduler_perf "$@"
SKIFF_BENCH_RELEASE=gates cargo bench -p skiff-tests --bench scheduler_perf "$@"
SKIFF_BENCH_NODES_AS=hollow SKIFF_BENCH_RELEASE=gates cargo bench -p skiff-tests --bench scheduler_perf "$@"
cargo bench -p skiff-tests --bench workloads "$@"
cargo bench -p skiff-kubelet --bench proxy_sync "$@"
cargo bench -p skiff-tests --bench service_latency "$@"
cargo bench -p skiff-tests --bench network_programming "$@"
cargo bench -p skiff-tests --bench pod_network_burst "$@"
cargo bench -p skiff-tests --bench cluster_dns "$@"
