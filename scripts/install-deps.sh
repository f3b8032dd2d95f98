#!/usr/bin/env bash
# Installs everything bidim needs to build, test, demo and benchmark on a fresh
# Debian 12 machine (run as root). Idempotent: fast when everything is present.
set -euo pipefail

PGRX_VERSION=0.18.1
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

need_pkgs=()
for p in postgresql-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} postgresql-contrib \
         libclang-dev clang sudo pkg-config libssl-dev python3 python3-venv prometheus ${BIDIM_EXTRA_PKGS:-}; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    need_pkgs+=("$p")
  fi
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_pkgs[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root to install ${need_pkgs[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not let Debian create and start its default cluster: tests start their own.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/bidim-no-main.conf
  # Nor start Prometheus's service (the intake's tests start their own on free ports):
  # policy-rc.d 101 forbids starting services from package scripts while installing.
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo-pgrx >/dev/null 2>&1 || ! cargo-pgrx pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  log "installing cargo-pgrx $PGRX_VERSION (takes several minutes)"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

if ! grep -qs "pg${PG_MAJOR}" "$HOME/.pgrx/config.toml"; then
  log "cargo pgrx init --pg${PG_MAJOR} $PG_CONFIG"
  cargo pgrx init --pg${PG_MAJOR} "$PG_CONFIG"
fi

# The postgres OS user must be able to traverse to build trees and temp dirs.
id postgres >/dev/null 2>&1 || { echo "install-deps: no postgres user after install" >&2; exit 1; }
log "dependencies present"
