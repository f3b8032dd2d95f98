#!/usr/bin/env bash
# Runs the benchmark harness (benches/) in release mode against a throwaway cluster.
# Arguments go to bidim-bench: --rows N, --runs K, --workload NAME (repeatable).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIDIM_ROOT"
BIDIM_EXTRA_PKGS="postgresql-15-tdigest postgresql-15-hll postgresql-15-partman" \
  bash scripts/install-deps.sh
install_extension release
# The query workload compares with TimescaleDB (hypertable, compressed) and the citus
# workload runs a Citus cluster: both built from the
# peers' source tarballs when they are at hand (idempotent; about 6 minutes once).
peers="$BIDIM_ROOT/../shared/peers/build-peers.sh"
if [[ " $* " == *" queries "* || " $* " == *" citus "* ]] && [ -f "$peers" ]; then
  bash "$peers"
fi
# The intake workload runs bidim-intake's release binary (and Debian's Prometheus).
if [[ " $* " == *" intake "* ]]; then
  cargo build --release -q -p bidim-intake
fi
cargo run --release -q -p bidim-bench -- "$@"
# The sketch workload also reports the pure-Rust core's micro-benchmark.
if [[ " $* " == *" sketch "* ]]; then
  echo
  echo "### sketch core (pure Rust, release build)"
  echo
  cargo test -q --release --lib sketch::tests::micro_benchmark -- --ignored --nocapture 2>/dev/null | grep '^|'
fi
