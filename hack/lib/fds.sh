# Sourced by the scripts that start long-lived daemons (hack/cluster,
# hack/node). A daemon must not inherit a descriptor other than stdio: a
# caller's `flock <file> <command>` lock on one would be held for as long as
# the daemon lives, and every later locker would wait forever.
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if ((fd > 2)); then eval "exec $fd>&-"; fi
  done
}
