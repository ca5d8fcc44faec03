#!/usr/bin/env bash
# Quick start: set the machine up, build Skiff, and run its main job.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "==> building Skiff (release)"
cargo build --release --workspace --bins
exec ./target/release/skiff demo "$@"
