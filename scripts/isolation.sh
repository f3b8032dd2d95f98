#!/usr/bin/env bash
# Runs the isolation specs (pg_regress/isolation/specs/*.spec, expected output in
# pg_regress/isolation/expected/) with PostgreSQL's own isolation tester against a
# throwaway cluster with bidim preloaded. The extension must be installed.
#   scripts/isolation.sh [--accept] [spec...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
run_suite pg_isolation_regress "$BIDIM_ROOT/pg_regress/isolation" spec bidim_isolation "$@"
