#!/bin/sh
# The image's entrypoint: a process type (api, worker, scheduler, migrate) becomes its
# genstudio command after `genstudio check --quiet` passed; `classifier` (the image
# classifier service, which reads none of the service's settings) starts at once (a contradiction in the
# configuration stops the container here, naming the variables; GENSTUDIO_SKIP_CHECK=1
# skips the check). Anything else is run as a genstudio command as it is (check, backup,
# restore, token, credits, ...).
set -eu

process="${1:-api}"
[ "$#" -gt 0 ] && shift

case "$process" in
  api) command=serve ;;
  worker | scheduler | migrate) command="$process" ;;
  classifier) exec genstudio classifier "$@" ;;
  *) exec genstudio "$process" "$@" ;;
esac

if [ "${GENSTUDIO_SKIP_CHECK:-0}" != "1" ]; then
  genstudio check --quiet
fi
exec genstudio "$command" "$@"
