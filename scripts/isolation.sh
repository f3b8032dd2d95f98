#!/usr/bin/env bash
# Runs the isolation specs (pg_regress/isolation/specs/*.spec, expected output in
# pg_regress/isolation/expected/) with PostgreSQL's own isolation tester against a
# throwaway cluster with bidim preloaded. The extension must be installed.
#   scripts/isolation.sh [--accept] [spec...]
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
cd "$BIDIM_ROOT/pg_regress/isolation"
if [ ${#tests[@]} -eq 0 ]; then
  for f in specs/*.spec; do tests+=("$(basename "$f" .spec)"); done
fi

ISOLATION=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress
[ -x "$ISOLATION" ] || die "pg_isolation_regress not found at $ISOLATION (postgresql-server-dev-$PG_MAJOR)"

dir=$(mktemp -d /tmp/bidim-isolation-XXXXXX)
port=$(free_port 56532)
cleanup() { stop_cluster "$dir" immediate; rm -rf "$dir"; }
trap cleanup EXIT
start_cluster "$dir" "$port" yes "max_prepared_transactions = 10"

rm -rf results output_iso regression.diffs regression.out
status=0
"$ISOLATION" --bindir="$PG_BINDIR" --host=127.0.0.1 --port="$port" --user=postgres \
  --inputdir=. --outputdir=. --dbname=bidim_isolation "${tests[@]}" || status=$?
if [ "$accept" = yes ]; then
  for t in "${tests[@]}"; do cp "results/$t.out" "expected/$t.out"; done
  log "copied results over expected for: ${tests[*]}"
  exit 0
fi
if [ $status -ne 0 ] && [ -f regression.diffs ]; then
  cat regression.diffs >&2
fi
exit $status
