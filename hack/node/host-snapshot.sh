#!/usr/bin/env bash
# Prints the host state that hack/node/node.sh may touch, to check that
# `down` leaves the host as `up` found it:
#
#   hack/node/host-snapshot.sh > /tmp/before; hack/node/node.sh up; ...
#   hack/node/node.sh down; hack/node/host-snapshot.sh | diff /tmp/before -
#
# Other suites' own links, namespaces and mounts (names without nc-/cni-) are
# left out, so their tests running meanwhile do not show up as differences.
set -euo pipefail
section() { echo "== $1"; }
section sysctl
sysctl vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops \
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
section iptables
{ iptables-save; ip6tables-save; } 2>/dev/null | { grep -v '^#' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
section mounts
awk '$2 ~ /kubelet|containerd|nc-node|cni/ {print $2, $3}' /proc/mounts
section links
ip -o link | awk -F': ' '{print $2}' | grep -E '^(nc-|cni|veth)' || true
section routes
ip route | grep -E '203\.0\.113\.' || true
section netns
ip netns list | grep -E '^cni-' || true
section hosts
cat /etc/hosts
section paths
# /run/netns: `down` removes it (and the self-bind mount `ip netns add` makes)
# when it was absent, unless namespaces other than the suites' are in it.
for p in /var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd /run/netns /etc/cni /opt/cni \
  /etc/cdi /var/run/cdi /etc/nri /opt/nri /var/lib/nc-kubelet /var/lib/nc-containerd /tmp/nc-node; do
  if [[ -e $p ]]; then echo "$p"; fi
done
section cgroups
find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name 'kubepods*'
section processes
pgrep -a -f '/tmp/nc-node|nc-kubelet' | grep -v host-snapshot || true
