#!/usr/bin/env bash
# Runs the pg_regress suite (pg_regress/sql/*.sql against pg_regress/expected/*.out)
# on a throwaway PostgreSQL 15 cluster with bidim preloaded. The extension must be
# installed already (scripts/test.sh does that).
#   scripts/regress.sh              run every test
#   scripts/regress.sh smoke        run the named tests
#   scripts/regress.sh --accept     run, then copy results over expected (review the diff!)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_suite pg_regress "$BIDIM_ROOT/pg_regress" sql bidim_regress "$@"
