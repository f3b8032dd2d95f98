#!/usr/bin/env bash
# Runs the benchmark harness (benches/) in release mode against a throwaway cluster.
# Arguments go to bidim-bench: --rows N, --runs K, --workload NAME (repeatable).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIDIM_ROOT"
BIDIM_EXTRA_PKGS="postgresql-15-tdigest postgresql-15-hll postgresql-15-partman" \
  bash scripts/install-deps.sh
install_extension release
cargo run --release -q -p bidim-bench -- "$@"
