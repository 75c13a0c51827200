#!/bin/sh
# PostgreSQL primary or streaming replica (PG_ROLE), data in the volume at $PGDATA.
# Runs as root only to read the Compose secret files (bind-mounted with the host's owner and 0600 mode), then
# everything runs as `postgres`. Passwords reach psql through its environment and \getenv, never its arguments.
set -eu
: "${PG_ROLE:?set PG_ROLE to primary or replica}"
: "${PG_PRIMARY_HOST:=db_primary}"
SLOT=lab_replica

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

write_pgpass() {
  # Used by pg_basebackup and by the replica's walreceiver (primary_conninfo names this passfile).
  umask 077
  printf '*:*:*:replicator:%s\n' "$(cat /run/secrets/db_replication_password)" > /var/lib/postgresql/.pgpass
  chown postgres:postgres /var/lib/postgresql/.pgpass
}

common_conf() {
  cat >> "$PGDATA/postgresql.auto.conf" <<CONF
listen_addresses = '*'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_keep_size = '128MB'
shared_preload_libraries = 'pg_stat_statements'
track_commit_timestamp = on
password_encryption = 'scram-sha-256'
fsync = off
log_line_prefix = '%m [%p] %u@%d '
CONF
  cat > "$PGDATA/pg_hba.conf" <<HBA
local all postgres peer
local all all scram-sha-256
host all all 0.0.0.0/0 scram-sha-256
host replication replicator 0.0.0.0/0 scram-sha-256
HBA
}

init_primary() {
  as_postgres initdb -D "$PGDATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 \
    --locale=C.UTF-8 --data-checksums >/dev/null
  common_conf
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -s start
  # The app logs in as the role named in its config (secret_rotate alternates app_a and app_b, members of the
  # group role app that owns everything); before any rotation that is app itself.
  APP_USER=$(cat /run/config/db_app_user 2>/dev/null || echo app)
  ADMIN_PW=$(cat /run/secrets/db_admin_password) APP_PW=$(cat /run/secrets/db_app_password) \
  REPL_PW=$(cat /run/secrets/db_replication_password) APP_USER=${APP_USER:-app} \
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres <<SQL
\getenv admin_pw ADMIN_PW
\getenv app_pw APP_PW
\getenv repl_pw REPL_PW
\getenv app_user APP_USER
CREATE ROLE runbook_admin LOGIN SUPERUSER PASSWORD :'admin_pw';
CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'repl_pw';
SELECT :'app_user' = 'app' AS app_logs_in \gset
\if :app_logs_in
CREATE ROLE app LOGIN PASSWORD :'app_pw';
\else
CREATE ROLE app NOLOGIN;
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_pw' IN ROLE app;
ALTER ROLE :"app_user" SET role = app;
\endif
CREATE DATABASE app OWNER app;
CREATE EXTENSION pg_stat_statements;
SELECT pg_create_physical_replication_slot('$SLOT');
SQL
  as_postgres pg_ctl -D "$PGDATA" -m fast -w -s stop
}

init_replica() {
  until as_postgres pg_isready -q -h "$PG_PRIMARY_HOST" -p 5432; do sleep 0.2; done
  # A newly promoted primary (DR failback rebuilds the old primary as its replica) has no slot yet.
  if ! out=$(PGPASSFILE=/var/lib/postgresql/.pgpass as_postgres psql -X -q --no-password \
      "host=$PG_PRIMARY_HOST port=5432 user=replicator dbname=postgres replication=database" \
      -c "CREATE_REPLICATION_SLOT $SLOT PHYSICAL RESERVE_WAL" 2>&1); then
    case "$out" in *"already exists"*) ;; *) echo "$out" >&2; exit 1 ;; esac
  fi
  PGPASSFILE=/var/lib/postgresql/.pgpass as_postgres pg_basebackup --no-password -h "$PG_PRIMARY_HOST" -p 5432 \
    -U replicator -D "$PGDATA" -X stream -S "$SLOT" -c fast
  common_conf
  cat >> "$PGDATA/postgresql.auto.conf" <<CONF
primary_conninfo = 'host=$PG_PRIMARY_HOST port=5432 user=replicator application_name=$SLOT passfile=/var/lib/postgresql/.pgpass'
primary_slot_name = '$SLOT'
CONF
  as_postgres touch "$PGDATA/standby.signal"
}

write_pgpass
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  case "$PG_ROLE" in
    primary) init_primary ;;
    replica) init_replica ;;
    *) echo "PG_ROLE must be primary or replica, not $PG_ROLE" >&2; exit 2 ;;
  esac
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
