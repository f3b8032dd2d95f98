#!/usr/bin/env bash
# The demo: installs what is missing, builds bidim in release mode, installs it,
# starts a throwaway PostgreSQL 15 on a free port with bidim preloaded, loads sample
# metrics and runs sql/demo.sql. The cluster stays up; the script says how to use
# and stop it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bash "$BIDIM_ROOT/scripts/install-deps.sh"
install_extension release

dir=$(mktemp -d /tmp/bidim-demo-XXXXXX)
port=$(free_port 55432)
log "starting a throwaway cluster in $dir on port $port"
start_cluster "$dir" "$port" yes "shared_buffers = '256MB'"

psql_cmd="$PG_BINDIR/psql -h 127.0.0.1 -p $port -U postgres"
log "running sql/demo.sql"
$psql_cmd -X -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE demo" >/dev/null
$psql_cmd -X -v ON_ERROR_STOP=1 -d demo -f "$BIDIM_ROOT/sql/demo.sql"

cat <<MSG

The demo cluster is still running.
  connect:  $psql_cmd -d demo
  stop:     sudo -u postgres $PG_BINDIR/pg_ctl -D $dir/data stop && rm -rf $dir
MSG
