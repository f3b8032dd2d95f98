#!/usr/bin/env bash
# Runs every test of bidim. Installs what is missing first (scripts/install-deps.sh).
#   1. cargo fmt --check and cargo clippy -D warnings (whole workspace, all targets)
#   2. plain cargo test: the pure Rust cores (no PostgreSQL)
#   3. cargo pgrx test: #[pg_test] functions inside a real PostgreSQL 15
#   4. pgspot on the generated install script; pg_regress golden files (pg_regress/)
#      and isolation specs
#      (pg_regress/isolation/, PostgreSQL's isolation tester) against throwaway clusters
#   5. integration tests (tests/): real clusters, several connections, crashes, a Citus
#      cluster (Citus built from ../shared/peers/ when missing); the Prometheus intake
#      (intake/) against Debian's Prometheus
#   6. a smoke run of the benchmark harness (tiny data; numbers are not checked)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIDIM_ROOT"

bash scripts/install-deps.sh

log "1/6 format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --features bidim/pg_test -- -D warnings

log "2/6 pure Rust unit tests"
cargo test --lib

log "3/6 #[pg_test] tests in PostgreSQL"
pgdata=$(mktemp -d /tmp/bidim-pgrx-XXXXXX)
chown postgres:postgres "$pgdata"
trap 'rm -rf "$pgdata"' EXIT
# cargo pgrx copies the library over the installed one in place; unlink it first so a
# server running on the old file (a demo, a benchmark) keeps its mapping intact.
rm -f "$(${PG_CONFIG} --pkglibdir)/bidim.so"
cargo pgrx test pg15 --runas postgres --pgdata "$pgdata/data"

# pgrx test installed a test build; install the plain one the remaining suites use.
install_extension dev

log "4/6 pgspot on the install script, pg_regress and isolation specs"
bash scripts/pgspot.sh
bash scripts/regress.sh
bash scripts/isolation.sh

log "5/6 integration tests"
# The Citus suite (tests/tests/citus.rs) needs Citus 13.2.2: built from ../shared/peers/
# when missing (idempotent; a few minutes once). No peers, no pass: it fails here.
peers=""
for d in "${BIDIM_PEERS:-}" "$BIDIM_ROOT/../shared/peers" /work/shared/peers; do
  if [ -n "$d" ] && [ -f "$d/build-peers.sh" ]; then peers="$d/build-peers.sh"; break; fi
done
if [ -n "$peers" ]; then
  bash "$peers"
elif [ ! -f "$(${PG_CONFIG} --pkglibdir)/citus.so" ]; then
  echo "Citus is not installed and no build-peers.sh was found (../shared/peers/, or set BIDIM_PEERS)" >&2
  exit 1
fi
# The Prometheus intake (intake/): a real Prometheus (Debian's) writes and reads back.
cargo test -p bidim-tests -p bidim-intake

log "6/6 benchmark harness smoke run"
cargo run -q -p bidim-bench -- --rows 20000 --runs 1 --workload copy --workload sketch --workload tags --workload chunks >/dev/null

log "all tests passed"
