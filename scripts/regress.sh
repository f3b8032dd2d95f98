#!/usr/bin/env bash
# Runs the pg_regress suite (pg_regress/sql/*.sql against pg_regress/expected/*.out)
# on a throwaway PostgreSQL 15 cluster with bidim preloaded. The extension must be
# installed already (scripts/test.sh does that).
#   scripts/regress.sh              run every test
#   scripts/regress.sh smoke        run the named tests
#   scripts/regress.sh --accept     run, then copy results over expected (review the diff!)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

accept=no
tests=()
for a in "$@"; do
  case "$a" in
    --accept) accept=yes ;;
    *) tests+=("$a") ;;
  esac
done
cd "$BIDIM_ROOT/pg_regress"
if [ ${#tests[@]} -eq 0 ]; then
  for f in sql/*.sql; do tests+=("$(basename "$f" .sql)"); done
fi

PG_REGRESS=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress
[ -x "$PG_REGRESS" ] || die "pg_regress not found at $PG_REGRESS (postgresql-server-dev-$PG_MAJOR)"

dir=$(mktemp -d /tmp/bidim-regress-XXXXXX)
port=$(free_port 56432)
cleanup() { stop_cluster "$dir" immediate; rm -rf "$dir"; }
trap cleanup EXIT
start_cluster "$dir" "$port" yes "max_parallel_workers_per_gather = 0"

rm -rf results regression.diffs regression.out
status=0
"$PG_REGRESS" --bindir="$PG_BINDIR" --host=127.0.0.1 --port="$port" --user=postgres \
  --inputdir=. --outputdir=. --dbname=bidim_regress "${tests[@]}" || status=$?
if [ "$accept" = yes ]; then
  for t in "${tests[@]}"; do cp "results/$t.out" "expected/$t.out"; done
  log "copied results over expected for: ${tests[*]}"
  exit 0
fi
if [ $status -ne 0 ] && [ -f regression.diffs ]; then
  cat regression.diffs >&2
fi
exit $status
