#!/bin/sh
# Runs a command under heaptrack's malloc hooks as the same process (exec), so that whoever
# started it measures and kills the program itself, not a wrapper. The raw record goes to
# $HEAPTRACK_DIR/heaptrack-<pid>.raw; scripts/bench-scale.sh interprets it afterwards.
#
#   LIFTOFF_OPERATOR_WRAPPER=scripts/heaptrack-exec.sh HEAPTRACK_DIR=target/bench ...
set -eu
exec env LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so \
  DUMP_HEAPTRACK_OUTPUT="${HEAPTRACK_DIR:?}/heaptrack-$$.raw" "$@"
