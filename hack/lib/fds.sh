# shellcheck shell=bash
# Sourced by the scripts that start long-lived daemons (hack/cluster,
# hack/node, hack/demo). A daemon must not inherit a descriptor other than
# stdio: a caller's `flock <file> <command>` lock on one (or node.sh's own
# lock, fd 9) would be held for as long as the daemon lives, and every later
# locker would wait forever. Start every daemon with start_daemon;
# test/unit/daemon-fds.test.ts checks that it leaves no lock behind and that
# nothing in hack/ starts a background process another way.
close_inherited_fds() {
  local fd
  for fd in "/proc/$BASHPID/fd/"*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-"; fi
  done
}

# start_daemon <pidfile> <logfile> <command> [args...]: runs the command in the
# background with stdin from /dev/null, stdout and stderr appended to
# <logfile> and no other descriptor, and writes its pid to <pidfile>. The
# command is exec'd (prefix it with setsid, nohup or env as needed), so the
# pid is the daemon's own. It runs in / rather than the caller's directory:
# CI deletes its checkout while the daemons it started live on, and a CRI-O
# whose working directory is gone has every exec fail in conmon ("Failed to
# get working directory"), exec probes included. Paths given to it must
# therefore be absolute.
start_daemon() {
  local pidfile=$1 logfile=$2
  shift 2
  (close_inherited_fds; cd /; exec "$@" </dev/null >>"$logfile" 2>&1) &
  echo $! >"$pidfile"
}
