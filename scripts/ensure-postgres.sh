#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 with a `test` database and trust auth
# for `postgres`. Starts an installed cluster, or installs one from Debian's packages.
set -euo pipefail
PGURL="${BACKLINE_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql >/dev/null 2>&1; then
  echo "PostgreSQL not installed: installing from Debian packages" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

if ! ready; then
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  echo "starting PostgreSQL $ver" >&2
  if [ "$(id -u)" = 0 ]; then
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  else
    sudo pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
ready || { echo "PostgreSQL did not start" >&2; exit 1; }

# Trust auth for local TCP and the `test` database (fresh clusters have neither).
if ! psql "$PGURL" -Atc 'select 1' >/dev/null 2>&1; then
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if [ -w "$hba" ] && ! grep -q "backline-trust" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # backline-trust\nhost all all ::1/128 trust # backline-trust\nlocal all all trust # backline-trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
    sleep 1
  fi
  su postgres -c "psql -Atc \"select 1 from pg_database where datname='test'\"" 2>/dev/null | grep -q 1 \
    || su postgres -c "createdb test" 2>/dev/null || true
fi
psql "$PGURL" -Atc 'select 1' >/dev/null
echo "PostgreSQL ready at $PGURL" >&2
