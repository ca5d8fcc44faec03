#!/usr/bin/env bash
# Runs every Skiff test, including the end-to-end ones against a real
# containerd (SKIFF_REQUIRE_E2E=1 turns a missing prerequisite into a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The e2e tests start binaries (skiff-cri-logger) that `cargo test` alone
# does not build.
cargo build --workspace --bins
SKIFF_REQUIRE_E2E=1 cargo test --workspace "$@"
