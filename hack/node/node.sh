#!/usr/bin/env bash
# A real single-node Kubernetes node on this machine, on top of the test
# control plane (hack/cluster): a container runtime with NRI (containerd, or
# CRI-O with NETCLAIM_NODE_RUNTIME=crio), runc, the kubelet, Multus over a
# default bridge network, and the NAD CRD.
#
#   hack/node/node.sh up       start (idempotent: a Ready node is reused)
#   hack/node/node.sh down     stop the node parts and leave the host as found
#                              (the control plane keeps running)
#   hack/node/node.sh restart kubelet|runtime
#                              restart one component; running pods stay
#   hack/node/node.sh status   exit 0 when the node is Ready
#   hack/node/node.sh env      print variables for tests (KUBECONFIG, sockets)
#   hack/node/node.sh image-load ARCHIVE REF, image-tag REF NEW-REF
#                              an image archive into the runtime's images; a second tag
#
#                 containerd (default)        crio
#   node name     nc-node                     nc-crio
#   directory     /tmp/nc-node                /tmp/nc-crio     ($NETCLAIM_NODE_DIR)
#   kubelet root  /var/lib/nc-kubelet         /var/lib/nc-crio-kubelet
#   runtime root  /var/lib/nc-containerd      /var/lib/nc-crio
#   bridge        nc-br0 198.18.0.0/26        nc-br1 198.18.0.64/26
#   pod cgroups   /kubepods                   /nc-crio/kubepods
#
# Both nodes may run at once. Everything lives under the node's directory
# except the kubelet and runtime roots, which need a real filesystem for
# overlayfs and bind mounts. Pods get their default network from the node's
# bridge; nothing touches eth0.
#
# What the nodes change outside those directories is recorded before the first
# starts ($nodes_dir/host-state) and undone when the last is down: sysctls the
# kubelet and the bridge plugin set, directories the kubelet and the runtimes
# create at fixed paths, an /etc/hosts line (a /run/netns that the suites'
# `ip netns add` made meanwhile too: restore_netns_dir) and /dev's mount
# propagation (shared, as on systemd hosts). Each node's `down` removes its
# cgroups, bridge and /etc/hosts line. Pod network namespaces are mounted
# under the node's directory (containerd's netns_mounts_under_state_dir,
# CRI-O's namespaces_dir).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../lib/fds.sh"
repo="$(cd "$here/../.." && pwd)"
# The container runtime: containerd (the default) or CRI-O, as OpenShift runs it.
# Each runtime's node has its own name, directories, bridge, pod range and
# kubelet ports, so both can run at once on this machine (the e2e suite runs on
# each in turn).
runtime=${NETCLAIM_NODE_RUNTIME:-containerd}
case $runtime in
  containerd)
    default_dir=/tmp/nc-node default_name=nc-node bridge=nc-br0 pod_cidr=198.18.0.0/26 node_ip=198.18.0.1
    kubelet_root=/var/lib/nc-kubelet runtime_root=/var/lib/nc-containerd
    healthz_port=10248 cgroup_top=kubepods default_multus=thin ;;
  crio)
    default_dir=/tmp/nc-crio default_name=nc-crio bridge=nc-br1 pod_cidr=198.18.0.64/26 node_ip=198.18.0.65
    kubelet_root=/var/lib/nc-crio-kubelet runtime_root=/var/lib/nc-crio
    # The containerd node's kubelet owns /kubepods: this one's pods live under /nc-crio.
    # Multus as OpenShift runs it: thick.
    healthz_port=10258 cgroup_top=nc-crio default_multus=thick ;;
  *) echo "NETCLAIM_NODE_RUNTIME must be containerd or crio, not '$runtime'" >&2; exit 2 ;;
esac
# The Kubernetes release of the kubelet and of the control plane it joins:
# K8S_VERSION, as for hack/cluster (versions.env; the oldest supported by
# default). mk/e2e.mk runs the containerd node at the newest release.
source "$repo/hack/cluster/versions.env"
export K8S_VERSION
dir=${NETCLAIM_NODE_DIR:-$default_dir}
node_name=${NETCLAIM_NODE_NAME:-$default_name}
runtime_sock=$dir/run/$runtime.sock
nri_sock=$dir/run/nri.sock
# From the benchmarking range 198.18.0.0/15: never this VM's own network
# (192.0.2.0/24, eth0's) nor 203.0.113.0/24, where this sandbox reaches its
# package registries (a connected route over it would cut every build on the
# machine off from them; checked in guard_routes). The bridge's gateway
# address doubles as the node IP: the kubelet refuses a loopback node IP, and
# eth0's network is off limits.
cni_bins=/usr/lib/cni
node_taint_key=netclaim.dev/e2e-node
# What the node changes on the host is recorded once for all nodes on this
# machine, by the first to come up, and restored by the last to go
# (nodes_dir/up.<name> marks each running node); its own cgroups in $state_file.
nodes_dir=/tmp/nc-nodes
host_state_file=$nodes_dir/host-state
state_file=$dir/host-state
hosts_marker="# netclaim test node $node_name"

# Set by the kubelet (container_manager_linux setupKernelTunables) and by the
# bridge plugin (isGateway enables forwarding).
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
# Fixed paths the kubelet, the runtimes and libcni create whatever the config says.
# The installed agent's DaemonSet (test/e2e) creates its hostPath directories too.
host_paths=(/var/lib/kubelet /var/log/pods /var/log/containers /var/lib/cni /run/containerd
  /run/netns /var/run/netns /etc/cni /opt/cni /etc/cdi /var/run/cdi /etc/nri /opt/nri
  /var/lib/netclaim /run/netclaim /dev/infiniband
  /run/crio /var/lib/crio /var/lib/containers /run/containers /etc/containers
  /etc/kubernetes)

log() { echo "node: $*" >&2; }

source "$here/multus.sh"

cluster_env() { "$repo/hack/cluster/cluster.sh" env; }
kubeconfig() { cluster_env | sed -n 's/^NETCLAIM_KUBECONFIG=//p'; }
kubectl_() { "$k8s_bin/kubectl" --kubeconfig "$(kubeconfig)" "$@"; }

alive() { [[ -f $dir/$1.pid ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

ready() {
  alive kubelet && alive "$runtime" || return 1
  curl -fsS --max-time 2 "http://127.0.0.1:$healthz_port/healthz" >/dev/null 2>&1 || return 1
  # A node of another Kubernetes release (K8S_VERSION) is not the one asked for: `up` replaces it.
  [[ "$(kubectl_ get node "$node_name" --request-timeout 5s \
    -o jsonpath='{.status.nodeInfo.kubeletVersion}/{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == "$K8S_VERSION/True" ]]
}

# Container processes left in the kubelet's cgroups (their shim died first).
cgroup_pids() {
  local dirs; dirs=$(cgroup_dirs)
  [[ -n $dirs ]] || return 0
  # shellcheck disable=SC2086 # one path per word
  find $dirs -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

# The top cgroup of this node's pods in each hierarchy (/kubepods, or /nc-crio
# whose kubepods the CRI-O node's kubelet makes).
cgroup_dirs() { find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$cgroup_top" 2>/dev/null || true; }

# Records the host as found, once: a second `up` after a failed one must not
# record the node's own changes as the original state, nor a second node the
# first one's.
record_host_state() {
  mkdir -p "$dir" "$nodes_dir"
  if [[ ! -f $host_state_file ]]; then
    {
      for s in "${sysctls[@]}"; do echo "sysctl $s $(sysctl -n "$s")"; done
      for p in "${host_paths[@]}"; do [[ -e $p ]] || echo "absent $p"; done
      echo "propagation /dev $(findmnt -no PROPAGATION /dev)"
    } > "$host_state_file.tmp"
    mv "$host_state_file.tmp" "$host_state_file"
  fi
  if [[ ! -f $state_file ]]; then
    { [[ -n "$(cgroup_dirs)" ]] || echo "absent-cgroups $cgroup_top"; } > "$state_file.tmp"
    mv "$state_file.tmp" "$state_file"
  fi
  touch "$nodes_dir/up.$node_name"
}

# The kubelet requires its cgroupRoot to exist in every hierarchy; cpuset's
# needs CPUs and memory nodes before a process may join a child.
make_cgroup_root() {
  [[ $cgroup_top != kubepods ]] || return 0
  local hierarchy
  for hierarchy in /sys/fs/cgroup/*/; do
    mountpoint -q "$hierarchy" || continue
    mkdir -p "$hierarchy$cgroup_top"
    if [[ -f ${hierarchy}cpuset.cpus ]]; then
      cat "${hierarchy}cpuset.cpus" > "$hierarchy$cgroup_top/cpuset.cpus"
      cat "${hierarchy}cpuset.mems" > "$hierarchy$cgroup_top/cpuset.mems"
    fi
  done
}

ip_to_int() { local IFS=.; read -r a b c d <<< "$1"; echo $(((a << 24) + (b << 16) + (c << 8) + d)); }

# Refuses a pod network that would capture an address the machine needs.
guard_routes() {
  local base=${pod_cidr%/*} bits=${pod_cidr#*/} host address
  local mask=$(((0xffffffff << (32 - bits)) & 0xffffffff))
  for host in proxy.golang.org registry.npmjs.org deb.debian.org; do
    for address in $(getent ahostsv4 "$host" 2>/dev/null | awk '{print $1}' | sort -u); do
      if (( ($(ip_to_int "$address") & mask) == ($(ip_to_int "$base") & mask) )); then
        log "pod network $pod_cidr would capture $host ($address); pick another range"
        exit 1
      fi
    done
  done
}

setup_host_network() {
  guard_routes
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  ip addr replace "$node_ip/${pod_cidr#*/}" dev "$bridge"
  ip link set "$bridge" up
  # The API server dials the kubelet by the node's Hostname address first
  # (its default --kubelet-preferred-address-types), which is the node name.
  grep -qF "$hosts_marker" /etc/hosts || echo "$node_ip $node_name $hosts_marker" >> /etc/hosts
}

prepare_dirs() {
  mkdir -p "$dir/cni/net.d" "$dir/cni/bin" "$dir/run" "$dir/log" "$dir/cdi" "$dir/nri/plugins" "$dir/nri/conf.d" "$dir/manifests" \
    "$runtime_root" "$kubelet_root"
  # A shared mount, as /run is on systemd hosts, made before the runtime mounts pod namespaces
  # there: a pod that mounts it with HostToContainer propagation (the installed agent, in
  # test/e2e/agent.ts) then sees the namespaces of pods started after it. down()
  # unmounts everything under $dir.
  mountpoint -q "$dir/run" || mount --bind "$dir/run" "$dir/run"
  mount --make-rshared "$dir/run"
  # The agent's DaemonSet mounts /dev/infiniband with HostToContainer propagation, which the
  # runtime refuses under a private /dev (this VM has no systemd to make it shared).
  mount --make-rshared /dev
  make_cgroup_root
}

write_containerd_config() {
  # A copy under $dir, not the checkout's file: a later run from another checkout reuses
  # this node, and `restart runtime` reads the configuration again, after this checkout
  # may be gone (CI clones, runs and deletes one).
  cp "$repo/deploy/node-setup/containerd/nri-default-validator.toml" "$dir/nri-default-validator.toml"
  cat > "$dir/containerd.toml" <<TOML
version = 4
root = "$runtime_root"
state = "$dir/run/containerd"
# NRI's default validator, as deploy/node-setup ships it for nodes.
imports = ["$dir/nri-default-validator.toml"]
[plugins.'io.containerd.server.v1.grpc']
  address = "$runtime_sock"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$runtime_sock.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.local/netclaim/pause:latest"
[plugins.'io.containerd.cri.v1.runtime']
  # This VM withholds CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj below 0, and runc fails the kubelet's -998 for sandboxes
  # ("failed to update /proc/self/oom_score_adj: Permission denied"). This
  # clamps every requested value to containerd's own (0).
  restrict_oom_score_adj = true
  # Pod network namespaces live under $dir, not in the host's /run/netns.
  netns_mounts_under_state_dir = true
  enable_cdi = true
  cdi_spec_dirs = ["$dir/cdi"]
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "/usr/sbin/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$dir/cni/bin"]
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
[plugins.'io.containerd.nri.v1.nri']
  disable = false
  socket_path = "$nri_sock"
  plugin_path = "$dir/nri/plugins"
  plugin_config_path = "$dir/nri/conf.d"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "2s"
TOML
}

# CRI-O as an OpenShift node runs it, less systemd: cgroupfs (this VM has cgroup v1
# and no systemd), NRI on with its default validator (deploy/node-setup/cri-o), and
# every path under $dir or $runtime_root so that nothing collides with the host or
# the containerd node. Images come from the offline archives (import_images), never
# a registry. CRI-O's configuration reference: its docs/crio.conf.5.md.
write_crio_config() {
  mkdir -p "$dir/etc" "$dir/bin"
  # This wrapper exists only for three quirks of this VM, which containerd absorbs and
  # CRI-O passes on to runc:
  # - runc cannot lower oom_score_adj (the VM withholds CAP_SYS_RESOURCE), and CRI-O has
  #   no restrict_oom_score_adj: a negative process.oomScoreAdj (the kubelet's -998 for
  #   sandboxes) becomes 0;
  # - a privileged container gets every capability the kernel knows (containerd gives
  #   those the runtime holds), CAP_SYS_RESOURCE too: capabilities outside this
  #   machine's bounding set are dropped;
  # - the kernel lists the hugetlb controller in /proc/cgroups but no hierarchy of it is
  #   mounted, and CRI-O (which reads the list) has no tolerate_missing_hugetlb_controller:
  #   the kubelet's hugepage limits are dropped.
  # Then it runs the real runc on the bundle's rewritten config.json.
  cat > "$dir/bin/runc" <<'SH'
#!/bin/bash
# The container's config.json (create, run) or an exec's process.json (exec --process).
config= process=
for ((i = 1; i <= $#; i++)); do
  j=$((i + 1))
  case ${!i} in
    --bundle | -b) config=${!j}/config.json ;;
    --bundle=*) config=${!i#--bundle=}/config.json ;;
    --process | -p) process=${!j} ;;
    --process=*) process=${!i#--process=} ;;
  esac
done
bounding=$(capsh --decode="$(awk '/^CapBnd/ { print $2 }' /proc/self/status)")
hugetlb=true; mountpoint -q /sys/fs/cgroup/hugetlb || hugetlb=false
rewrite() { # file jq-path-of-the-process ("" when the file is the process)
  [[ -n $1 && -f $1 ]] || return 0
  jq --argjson hugetlb "$hugetlb" --arg bounding "${bounding#*=}" "
    (\$bounding | ascii_upcase | split(\",\")) as \$held
    | if ($2.oomScoreAdj // 0) < 0 then $2.oomScoreAdj = 0 else . end
    | if $2.capabilities then $2.capabilities |= map_values(map(select(IN(\$held[])))) else . end
    | if \$hugetlb then . else del(.linux.resources.hugepageLimits) end" "$1" > "$1.tmp" && mv "$1.tmp" "$1"
}
rewrite "$config" .process || exit 1
rewrite "$process" "" || exit 1
exec /usr/sbin/runc "$@"
SH
  chmod +x "$dir/bin/runc"
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' > "$dir/etc/policy.json"
  echo 'unqualified-search-registries = []' > "$dir/etc/registries.conf"
  cat > "$dir/crio.conf" <<TOML
[crio]
root = "$runtime_root/storage"
runroot = "$dir/run/storage"
storage_driver = "overlay"
log_dir = "$dir/log/pods"
version_file = "$dir/run/crio/version"
version_file_persist = "$runtime_root/version"
clean_shutdown_file = "$runtime_root/clean.shutdown"
[crio.api]
listen = "$runtime_sock"
[crio.runtime]
cgroup_manager = "cgroupfs"
conmon = "/usr/bin/conmon"
conmon_cgroup = "pod"
default_runtime = "runc"
pinns_path = "$crio_bin/pinns"
# Pod network namespaces, under the shared mount $dir/run (prepare_dirs).
namespaces_dir = "$dir/run/ns"
container_exits_dir = "$dir/run/exits"
container_attach_socket_dir = "$dir/run"
hooks_dir = []
apparmor_profile = ""
irqbalance_config_file = ""
cdi_spec_dirs = ["$dir/cdi"]
[crio.runtime.runtimes.runc]
runtime_path = "$dir/bin/runc"
runtime_root = "$dir/run/runc"
runtime_type = "oci"
[crio.image]
signature_policy = "$dir/etc/policy.json"
pause_image = "registry.local/netclaim/pause:latest"
pinned_images = ["registry.local/netclaim/pause:latest", "registry.local/netclaim/busybox:latest"]
[crio.network]
network_dir = "$dir/cni/net.d/"
plugin_dirs = ["$dir/cni/bin"]
[crio.nri]
enable_nri = true
nri_listen = "$nri_sock"
nri_plugin_dir = "$dir/nri/plugins"
nri_plugin_config_dir = "$dir/nri/conf.d"
nri_plugin_registration_timeout = "5s"
nri_plugin_request_timeout = "2s"
[crio.nri.default_validator]
nri_enable_default_validator = true
TOML
}

write_crictl_config() {
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$runtime_sock" "$runtime_sock" > "$dir/crictl.yaml"
}

write_kubelet_config() {
  cat > "$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$runtime_sock
cgroupsPerQOS: true
cgroupRoot: /${cgroup_top/#kubepods/}
enforceNodeAllocatable: [pods]
authentication:
  anonymous: { enabled: true }
  webhook: { enabled: false }
authorization: { mode: AlwaysAllow }
rotateCertificates: false
serverTLSBootstrap: false
resolvConf: /etc/resolv.conf
evictionHard: { nodefs.available: "1%", imagefs.available: "1%", memory.available: "100Mi" }
localStorageCapacityIsolation: false
makeIPTablesUtilChains: false
podLogsDir: $dir/log/pods
staticPodPath: $dir/manifests
registerNode: true
# Other suites share the control plane and run DaemonSets and pods meant for
# their fake nodes; only pods that tolerate this taint land on the real node.
registerWithTaints:
  - { key: $node_taint_key, value: "true", effect: NoSchedule }
syncFrequency: 10s
fileCheckFrequency: 10s
YAML
}

write_runtime_config() { "write_${runtime}_config"; }

start_runtime() {
  log "starting $runtime"
  case $runtime in
    containerd)
      start_daemon "$dir/containerd.pid" "$dir/log/containerd.log" \
        env PATH="$node_bin:$PATH" setsid "$node_bin/containerd" --config "$dir/containerd.toml" ;;
    crio)
      # No storage.conf or registries.conf of the host's: the configuration names every path.
      start_daemon "$dir/crio.pid" "$dir/log/crio.log" \
        env PATH="$node_bin:$PATH" CONTAINERS_STORAGE_CONF=/dev/null CONTAINERS_REGISTRIES_CONF="$dir/etc/registries.conf" \
        setsid "$crio_bin/crio" --config "$dir/crio.conf" --config-dir "" ;;
  esac
  # The socket exists a moment before the runtime serves on it: wait for an answer.
  for _ in $(seq 300); do crictl_ version >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "$runtime did not start; see $dir/log/$runtime.log"; tail -20 "$dir/log/$runtime.log" >&2; exit 1
}

crictl_() { "$node_bin/crictl" --runtime-endpoint "unix://$runtime_sock" --image-endpoint "unix://$runtime_sock" "$@"; }

start_kubelet() {
  log "starting kubelet"
  local kubeconfig; kubeconfig=$(kubeconfig)
  start_daemon "$dir/kubelet.pid" "$dir/log/kubelet.log" \
    env PATH="$node_bin:$PATH" setsid "$k8s_bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
    --hostname-override "$node_name" --node-ip "$node_ip" --root-dir "$kubelet_root" \
    --cert-dir "$kubelet_root/pki" --v=2
}

wait_ready() {
  for _ in $(seq 120); do ready && return 0; alive kubelet || break; sleep 0.5; done
  log "node did not become Ready; see $dir/log/kubelet.log"; tail -20 "$dir/log/kubelet.log" >&2
  exit 1
}

# ctr and copyimg, quiet unless they fail (ctr warns about cgroup v1 on every call).
quiet() {
  local out
  out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }
}
ctr_() { quiet "$node_bin/ctr" --address "$runtime_sock" -n k8s.io "$@"; }
# CRI-O's own test tool writes into its image store beside the running CRI-O
# (containers/storage locks the store).
copyimg_() {
  quiet "$crio_bin/copyimg" --root "$runtime_root/storage" --runroot "$dir/run/storage" --storage-driver overlay \
    --signature-policy "$dir/etc/policy.json" "$@"
}

# An image archive (OCI, or docker's as `make image` writes) into the runtime's store,
# under its reference; never pulled.
load_image() { # archive reference
  case $runtime in
    containerd) ctr_ images import --local "$1" ;;
    crio)
      local transport=oci-archive
      if tar -tf "$1" manifest.json >/dev/null 2>&1; then transport=docker-archive; fi
      copyimg_ --image-name "$2" --import-from "$transport:$1" ;;
  esac
}

# The image under a second reference (an "upgrade" to a new tag in test/e2e).
tag_image() { # reference new-reference
  case $runtime in
    containerd) ctr_ images tag --force "$1" "$2" ;;
    crio) copyimg_ --image-name "$1" --add-name "$2" ;;
  esac
}

import_images() {
  for image in pause busybox; do
    load_image "$images/$image.tar" "registry.local/netclaim/$image:latest"
    # Only CRI pulls pin images in containerd; pinned ones survive the kubelet's
    # image GC. CRI-O pins them by its configuration (pinned_images).
    [[ $runtime != containerd ]] || ctr_ images label "registry.local/netclaim/$image:latest" io.cri-containerd.pinned=pinned
  done
}

binaries() {
  k8s_bin=$("$repo/hack/cluster/build.sh")
  node_bin=$("$here/build.sh")
  [[ $runtime != crio ]] || crio_bin=$("$here/build-crio.sh")
}

up() {
  "$repo/hack/cluster/cluster.sh" up >/dev/null
  binaries
  images=$("$here/images.sh")
  if ready; then
    import_images # cheap, and picks up rebuilt images
    log "node $node_name is already Ready"
    return
  fi
  # A node of another release is replaced whole (down() finds its control plane).
  local previous
  previous=$(cat "$dir/k8s-version" 2>/dev/null || true)
  if [[ -n $previous && $previous != "$K8S_VERSION" ]]; then
    log "replacing the node of Kubernetes $previous"
    (down)
  fi
  stop_processes
  record_host_state
  setup_host_network
  prepare_dirs
  write_runtime_config
  echo "$K8S_VERSION" > "$dir/k8s-version"
  write_cni_config
  write_kubelet_config
  write_crictl_config
  start_multus_daemon
  start_runtime
  import_images
  start_kubelet
  kubectl_ apply -f "$here/nad-crd.yaml" >/dev/null
  wait_ready
  kubectl_ wait --for condition=Established crd/network-attachment-definitions.k8s.cni.cncf.io --timeout 30s >/dev/null
  log "node $node_name is Ready"
}

# Restarts one component the way a node upgrade or crash would: running pods
# (their shims and network namespaces) stay.
restart() { # kubelet|runtime
  binaries
  alive kubelet && alive "$runtime" || { log "the node is not up"; exit 1; }
  case $1 in
    kubelet) stop_component kubelet; start_kubelet ;;
    runtime) stop_component "$runtime"; start_runtime ;;
    *) echo "usage: $0 restart kubelet|runtime" >&2; exit 2 ;;
  esac
  wait_ready
  log "$1 restarted"
}

stop_pid() { # pid
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

stop_component() { # name
  [[ -f $dir/$1.pid ]] || return 0
  stop_pid "$(cat "$dir/$1.pid")"
  rm -f "$dir/$1.pid"
}

# The processes that keep our containers running (containerd's shims, found by
# its socket; CRI-O's conmons, by their paths under $dir), which outlive the runtime.
our_shims() {
  case $runtime in
    containerd) pgrep -f "containerd-shim-runc-v2 .*-address $runtime_sock" || true ;;
    crio) pgrep -f "^/usr/bin/conmon .*$dir/" || true ;;
  esac
}

stop_processes() {
  stop_component kubelet
  if alive "$runtime" && [[ -S $runtime_sock ]]; then
    # Removing the sandboxes runs the CNI DEL (IPAM release, netns removal)
    # and stops the shims, as the kubelet would.
    crictl_ rmp --all --force >/dev/null 2>&1 || true
  fi
  stop_component "$runtime"
  for pid in $(our_shims); do stop_pid "$pid"; done
  # After the sandboxes' CNI DEL, which thick Multus serves.
  stop_multus_daemon
}

# Mount points at or under a path, deepest first.
mounts_under() { awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts | sort -r; }

# Network namespaces the suites make with `ip netns add` (test/node: ncsim-*,
# test/netns: nctest-*). The node itself makes none in /run/netns (containerd
# keeps pod namespaces under $dir: netns_mounts_under_state_dir).
test_netns='^(ncsim|nctest)-'

# /run/netns (or /var/run/netns, the same directory here), absent when the node
# came up. `ip netns add`, which the suites run, creates it and bind-mounts it
# onto itself (shared, so namespaces show in every mount namespace): rm cannot
# remove that mount point ("Device or resource busy"), and what is in it are
# namespaces. Removes the suites' leftover namespaces only; if any other is
# there, leaves the directory as it is; else undoes the self-bind and removes
# the empty directory.
restore_netns_dir() { # path
  local path ns others=()
  path=$(realpath -e "$1" 2>/dev/null) || return 0
  for ns in "$path"/* "$path"/.[!.]*; do
    [[ -e $ns || -L $ns ]] || continue
    if [[ ${ns##*/} =~ $test_netns ]]; then
      umount -l "$ns" 2>/dev/null || true
      rm -f "$ns" || others+=("${ns##*/}")
    else
      others+=("${ns##*/}")
    fi
  done
  if ((${#others[@]})); then
    log "leaving $path: it holds network namespaces the node did not make (${others[*]})"
    return 0
  fi
  local m
  for m in $(mounts_under "$path"); do
    if [[ $m != "$path" ]]; then log "leaving $path: $m is mounted under it"; return 0; fi
  done
  for _ in 1 2 3 4; do
    [[ -n "$(mounts_under "$path")" ]] || break
    umount "$path" 2>/dev/null || umount -l "$path" || { log "leaving $path: cannot unmount it"; return 0; }
  done
  rmdir "$path" 2>/dev/null || log "leaving $path: not empty"
}

# This node's own changes: its cgroups.
restore_node_state() {
  [[ -f $state_file ]] || return 0
  local kind pid cg
  while read -r kind _; do
    [[ $kind == absent-cgroups ]] || continue
    for pid in $(cgroup_pids); do stop_pid "$pid"; done
    for cg in $(cgroup_dirs); do find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  done < "$state_file"
}

# What the nodes changed on the host, once the last of them is down.
restore_host_state() {
  rm -f "$nodes_dir/up.$node_name"
  local others; others=$(find "$nodes_dir" -maxdepth 1 -name 'up.*' -printf '%f ' 2>/dev/null || true)
  if [[ -n $others ]]; then
    others=${others//up./}; log "leaving host settings for the nodes still up: ${others% }"
    return 0
  fi
  [[ -f $host_state_file ]] || return 0
  local kind what value
  while read -r kind what value; do
    case $kind in
      sysctl) [[ "$(sysctl -n "$what")" == "$value" ]] || sysctl -qw "$what=$value" ;;
      propagation) [[ $value != private ]] || mount --make-rprivate "$what" ;;
      absent)
        case $what in
          /run/netns | /var/run/netns) restore_netns_dir "$what" ;;
          *)
            # rm -rf would delete what a mount under the path shows, or fail on its mount point.
            if [[ -e $what && -n "$(mounts_under "$(realpath -e "$what")")" ]]; then
              log "leaving $what: something is mounted there ($(mounts_under "$(realpath -e "$what")" | tr '\n' ' '))"
            else
              rm -rf "$what"
            fi ;;
        esac ;;
    esac
  done < "$host_state_file"
  rm -rf "$nodes_dir"
}

down() {
  # The release the node runs, whatever K8S_VERSION says now: its Node object is in that release's control plane.
  if [[ -f $dir/k8s-version ]]; then K8S_VERSION=$(cat "$dir/k8s-version"); fi
  binaries
  if "$repo/hack/cluster/cluster.sh" status; then
    kubectl_ delete pods --all-namespaces --field-selector "spec.nodeName=$node_name" \
      --force --grace-period 0 --wait=false >/dev/null 2>&1 || true
    kubectl_ delete node "$node_name" --ignore-not-found >/dev/null || true
  fi
  stop_processes
  for m in $(awk -v a="$kubelet_root" -v b="$runtime_root" -v c="$dir" \
      'index($2, a) == 1 || index($2, b) == 1 || index($2, c) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  restore_node_state
  restore_host_state
  ip link delete "$bridge" 2>/dev/null || true
  sed -i "\|$hosts_marker\$|d" /etc/hosts
  rm -rf "$dir" "$kubelet_root" "$runtime_root"
  log "node removed"
}

# One up/down/restart at a time (test files running in parallel all call up):
# lock this script itself, which leaves nothing behind. The daemons started
# here, and the control plane `up` starts through hack/cluster/cluster.sh, must
# not inherit the lock's descriptor (start_daemon), or they hold it forever.
serialize() { exec 9<"$here/node.sh"; flock 9; }

# Helm values that install the agent's chart on this node (docs/install.md's values): where
# this node keeps what a standard node keeps elsewhere. test/e2e/agent.ts and make demo use
# them; the image must be in the node's containerd (never pulled).
pod_netns_dir() {
  case $runtime in
    containerd) echo "$dir/run/containerd/io.containerd.grpc.v1.cri/netns" ;;
    crio) echo "$dir/run/ns/netns" ;;
  esac
}

helm_values() {
  local server host port
  server=$(kubectl_ config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  host=${server#https://}; port=${host##*:}; host=${host%:*}
  cat <<YAML
image: { pullPolicy: Never }
nodeSelector: { kubernetes.io/hostname: $node_name }
kubelet: { rootDir: $kubelet_root }
nri: { socketPath: $nri_sock }
cdi: { specDir: $dir/cdi }
# Where the runtime mounts pod network namespaces, under the shared mount $dir/run:
# containerd's netns_mounts_under_state_dir, CRI-O's namespaces_dir.
netns: { dir: $(pod_netns_dir) }
# The node's own CNI configuration is its Multus's: the agent gets a directory of its own.
cni: { binDir: $cni_bins, confDir: $dir/run/netclaim-cni-conf }
# The test cluster has no Service network: the API server on the node's loopback.
env:
  - { name: KUBERNETES_SERVICE_HOST, value: "$host" }
  - { name: KUBERNETES_SERVICE_PORT, value: "$port" }
YAML
}

case ${1:-} in
  up) serialize; up ;;
  down) serialize; down ;;
  restart) serialize; restart "${2:-}" ;;
  image-load) binaries; load_image "${2:?archive}" "${3:?reference}" ;;
  image-tag) binaries; tag_image "${2:?reference}" "${3:?new reference}" ;;
  status) binaries; ready ;;
  env)
    echo "NETCLAIM_KUBECONFIG=$(kubeconfig)"
    echo "NETCLAIM_KUBE_BIN=$(cluster_env | sed -n 's/^NETCLAIM_KUBE_BIN=//p')"
    echo "NETCLAIM_NODE_BIN=$("$here/build.sh")"
    echo "NETCLAIM_KUBE_VERSION=$K8S_VERSION"
    echo "NETCLAIM_NODE_NAME=$node_name"
    echo "NETCLAIM_NODE_IP=$node_ip"
    echo "NETCLAIM_NODE_TAINT=$node_taint_key"
    echo "NETCLAIM_NRI_SOCKET=$nri_sock"
    echo "NETCLAIM_KUBELET_DIR=$kubelet_root"
    echo "NETCLAIM_NODE_RUNTIME=$runtime"
    echo "NETCLAIM_RUNTIME_SOCKET=$runtime_sock"
    echo "NETCLAIM_CRICTL_CONFIG=$dir/crictl.yaml"
    echo "NETCLAIM_CDI_DIR=$dir/cdi"
    echo "NETCLAIM_STATIC_POD_DIR=$dir/manifests"
    echo "NETCLAIM_POD_CIDR=$pod_cidr"
    ;;
  helm-values) binaries; helm_values ;;
  *) echo "usage: [NETCLAIM_NODE_RUNTIME=containerd|crio] $0 up|down|restart kubelet|runtime|status|env|helm-values|image-load ARCHIVE REF|image-tag REF NEW-REF" >&2; exit 2 ;;
esac
