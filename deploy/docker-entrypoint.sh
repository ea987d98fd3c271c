#!/bin/sh
# Container entry point: configuration comes from OVERTURE_* variables (see the README).
# In a StatefulSet, a pod named <name>-<ordinal> is node <ordinal + 1> unless OVERTURE_NODE_ID is set.
set -eu
if [ -z "${OVERTURE_NODE_ID:-}" ]; then
  ordinal="${HOSTNAME##*-}"
  case "$ordinal" in
    ''|*[!0-9]*) ;;
    *) OVERTURE_NODE_ID=$((ordinal + 1)); export OVERTURE_NODE_ID ;;
  esac
fi
exec /usr/local/bin/overture server "$@"
