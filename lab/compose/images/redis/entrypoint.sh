#!/bin/sh
# Runs as root only to read the secret file (Compose bind-mounts it with the host's owner and 0600 mode), then
# starts redis-server as `redis` with a configuration only `redis` can read.
set -eu
conf=/etc/redis/lab.conf
password=$(cat /run/secrets/redis_password)
umask 077
cat > "$conf" <<CONF
bind 0.0.0.0
port 6379
daemonize no
logfile ""
save ""
appendonly no
user default on >$password ~* &* +@all
CONF
chown redis:redis "$conf"
exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$conf"
