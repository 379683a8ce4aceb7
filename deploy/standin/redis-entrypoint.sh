#!/bin/sh
# As the official redis image: `redis-server ...` runs as the redis user, with
# protected mode off (the official build's default), in /data.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
