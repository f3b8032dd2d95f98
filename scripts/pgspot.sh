#!/usr/bin/env bash
# Lints the extension's install script with pgspot (Timescale's checker for extension
# scripts: unqualified function calls and operators, unsafe search_path, CREATE OR
# REPLACE, unsafe schema creation). Installs pgspot into a private venv on first use.
# Fails on any finding: there are no exceptions to explain today.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PGSPOT_VERSION=0.9.4
venv=${XDG_CACHE_HOME:-$HOME/.cache}/bidim/pgspot-$PGSPOT_VERSION
if [ ! -x "$venv/bin/pgspot" ]; then
  log "installing pgspot $PGSPOT_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "pgspot==$PGSPOT_VERSION"
fi
script=$(${PG_CONFIG} --sharedir)/extension/bidim--$(sed -n 's/^version = "\(.*\)"/\1/p' "$BIDIM_ROOT/Cargo.toml" | head -1).sql
[ -f "$script" ] || die "no installed install script at $script (run cargo pgrx install first)"
log "pgspot $script"
# bidim.refresh_rollup commits between its two steps, which a procedure with a SET
# clause cannot do: it pins nothing, and every name in it is schema-qualified.
out=$("$venv/bin/pgspot" --plpgsql \
  --proc-without-search-path 'bidim.refresh_rollup(view pg_catalog.regclass)' "$script" 2>&1) || true
echo "$out" | tail -n 40
echo "$out" | grep -q "Errors: 0 Warnings: 0 Unknown: 0" || die "pgspot found problems in the install script"
