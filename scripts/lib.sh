# Shared shell helpers for bidim's scripts. Source it; do not run it.
# shellcheck shell=bash

BIDIM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/${PG_MAJOR}/bin}
PG_CONFIG=${PG_CONFIG:-${PG_BINDIR}/pg_config}
export PATH="$HOME/.cargo/bin:$PATH" PG_BINDIR PG_CONFIG

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as the postgres OS user (initdb and the server refuse root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && sudo -n -u postgres -- "$@")
  else
    "$@"
  fi
}

# Print a loopback TCP port nobody listens on, starting the search at $1.
free_port() {
  local p=${1:-55432}
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# Build the extension (profile: "dev" or "release") and install it into PostgreSQL 15.
install_extension() {
  local profile=${1:-dev} flag=()
  [ "$profile" = release ] && flag=(--release)
  local libdir
  libdir=$(${PG_CONFIG} --pkglibdir)
  log "building and installing bidim ($profile) into $libdir"
  # Unlink the old library first: a running server keeps its mapping of the old file,
  # where overwriting it in place would pull the pages from under it.
  rm -f "$libdir/bidim.so"
  (cd "$BIDIM_ROOT" && cargo pgrx install "${flag[@]}" --pg-config "$PG_CONFIG" >/dev/null)
}

# start_cluster DIR PORT [preload=yes] [extra postgresql.conf lines...]
# Creates a cluster in DIR (owned by postgres) and starts it on 127.0.0.1:PORT.
start_cluster() {
  local dir=$1 port=$2 preload=${3:-yes}
  shift 3 || shift $#
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  as_pg "$PG_BINDIR/initdb" -D "$dir/data" --auth=trust --encoding=UTF8 --locale=C -U postgres >/dev/null
  {
    echo "# bidim"
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    [ "$preload" = yes ] && echo "shared_preload_libraries = 'bidim'"
    for line in "$@"; do echo "$line"; done
  } >>"$dir/data/postgresql.conf"
  as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 start >/dev/null ||
    { tail -n 30 "$dir/server.log" >&2; die "could not start PostgreSQL in $dir"; }
}

# stop_cluster DIR [mode]
stop_cluster() {
  local dir=$1 mode=${2:-fast}
  [ -f "$dir/data/postmaster.pid" ] && as_pg "$PG_BINDIR/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null
  return 0
}

# run_suite TOOL DIR EXT DBNAME [args...]: runs pg_regress-style TOOL ("pg_regress" or
# "pg_isolation_regress") over DIR/sql|specs/*.EXT against a throwaway cluster with
# bidim preloaded. Args: test names, or --accept to copy results over expected.
run_suite() {
  local tool=$1 dir=$2 ext=$3 dbname=$4
  shift 4
  local accept=no tests=() a f
  for a in "$@"; do
    case "$a" in
      --accept) accept=yes ;;
      *) tests+=("$a") ;;
    esac
  done
  cd "$dir"
  if [ ${#tests[@]} -eq 0 ]; then
    for f in */*."$ext"; do tests+=("$(basename "$f" ."$ext")"); done
  fi
  local bin
  bin=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/$( [ "$tool" = pg_regress ] && echo regress || echo isolation )/$tool
  [ -x "$bin" ] || die "$tool not found at $bin (postgresql-server-dev-$PG_MAJOR)"
  SUITE_DIR=$(mktemp -d /tmp/bidim-suite-XXXXXX)
  local port
  port=$(free_port 56432)
  trap 'stop_cluster "$SUITE_DIR" immediate; rm -rf "$SUITE_DIR"' EXIT
  # Background maintenance off: golden outputs must not depend on when a round runs
  # (tests/tests/maintenance.rs covers the worker).
  start_cluster "$SUITE_DIR" "$port" yes "max_parallel_workers_per_gather = 0" \
    "max_prepared_transactions = 10" "bidim.maintenance = off"
  rm -rf results output_iso regression.diffs regression.out
  local status=0
  "$bin" --bindir="$PG_BINDIR" --host=127.0.0.1 --port="$port" --user=postgres \
    --inputdir=. --outputdir=. --dbname="$dbname" "${tests[@]}" || status=$?
  if [ "$accept" = yes ]; then
    for a in "${tests[@]}"; do cp "results/$a.out" "expected/$a.out"; done
    log "copied results over expected for: ${tests[*]}"
    return 0
  fi
  if [ $status -ne 0 ] && [ -f regression.diffs ]; then
    cat regression.diffs >&2
  fi
  return $status
}
