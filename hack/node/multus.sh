# shellcheck shell=bash disable=SC2154 # node.sh, which sources this, defines the variables
# The test node's Multus, sourced by node.sh (which defines $dir, $here, $bridge, $pod_cidr,
# $node_ip, $cni_bins, $kubelet_root, $node_name, host_paths, log, kubectl_, kubeconfig,
# start_daemon, stop_component, default_multus). NETCLAIM_MULTUS picks how it runs (default:
# thin on the containerd node, thick on the CRI-O node, as OpenShift runs it):
#
#   thin            the `multus` CNI plugin, which the runtime runs for each pod;
#   thick           multus-daemon, a long-lived process as OpenShift's cluster-network-operator
#                   runs it (bindata/network/multus/multus.yaml), and the `multus-shim` plugin
#                   that the runtime runs and that hands each request to the daemon's socket.
#
# Both delegate the default network to the node's bridge and read the cluster as the
# ServiceAccount kube-system/multus, bound to Multus's own ClusterRole (multus-rbac.yaml), so the
# tests exercise its rules, its DRA path's included. Both run in a mount namespace of their own
# that shows this node's files at the fixed paths where a pod of Multus's DaemonSet finds them
# (write_multus_mounts). Multus comes from hack/node/build-multus.sh.
multus_mode=${NETCLAIM_MULTUS:-$default_multus}
# The runtime's CNI configuration directory (containerd's conf_dir, CRI-O's network_dir), where
# the Multus configuration must be the first file.
multus_cni_conf_dir=$dir/cni/net.d
multus_dir=$dir/multus
# The mount points of write_multus_mounts, made on the host (`down` removes what was absent).
host_paths+=(/run/secrets)

case $multus_mode in
  thin | thick) ;;
  *) log "NETCLAIM_MULTUS=$multus_mode: must be thin or thick"; exit 2 ;;
esac

# The node's CNI plugins and Multus's configuration; the daemon (thick) writes its own
# 00-multus.conf when it starts.
write_cni_config() {
  local multus_bin; multus_bin=$("$here/build-multus.sh")
  for plugin in "$cni_bins"/* "$here/cni/"*; do ln -sf "$plugin" "$dir/cni/bin/"; done
  mkdir -p "$multus_dir"
  write_multus_credentials
  write_multus_mounts
  case $multus_mode in
    thin)
      printf '#!/bin/sh\nexec unshare --mount --propagation slave %q %q\n' "$multus_dir/mounts" "$multus_bin/multus" > "$dir/cni/bin/multus"
      chmod +x "$dir/cni/bin/multus"
      write_thin_multus_config ;;
    thick)
      ln -sf "$multus_bin/multus-shim" "$dir/cni/bin/multus-shim"
      ln -sf "$multus_bin/multus-daemon" "$multus_dir/multus-daemon"
      write_thick_multus_config ;;
  esac
}

# A command that mounts, in the (new, slave) mount namespace it runs in, what Multus reads at
# fixed paths, then runs its arguments:
# - the ServiceAccount at client-go's in-cluster path (rest.InClusterConfig), where
#   multus-daemon takes its credentials from;
# - this node's kubelet's pod-resources directory at the standard kubelet root: Multus lists the
#   pod's device-plugin resources there before its DRA path runs, and fails the pod's CNI ADD
#   when neither that socket nor the device manager's checkpoint exists (this node's kubelet
#   keeps its root elsewhere, and another node's kubelet may run beside it).
# Slave propagation lets it see the pod network namespaces the runtime mounts later, and keeps
# these mounts out of the host's namespace.
write_multus_mounts() {
  local sa_path=/run/secrets/kubernetes.io/serviceaccount pod_resources=/var/lib/kubelet/pod-resources
  # The kubelet makes its directory at start, after thick Multus has started.
  mkdir -p "$sa_path" "$pod_resources" "$kubelet_root/pod-resources"
  cat > "$multus_dir/mounts" <<SH
#!/bin/sh
set -e
mount --bind "$multus_dir/serviceaccount" "$sa_path"
mount --bind "$kubelet_root/pod-resources" "$pod_resources"
exec "\$@"
SH
  chmod +x "$multus_dir/mounts"
}

# The ServiceAccount's token, the cluster's CA and a kubeconfig made of them.
write_multus_credentials() {
  kubectl_ apply -f "$here/multus-rbac.yaml" >/dev/null
  local sa=$multus_dir/serviceaccount
  mkdir -p "$sa"
  # A year: the node is reused across test runs for as long as it stays Ready.
  kubectl_ create token multus -n kube-system --duration 8760h > "$sa/token"
  kubectl_ config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > "$sa/ca.crt"
  echo kube-system > "$sa/namespace"
  cat > "$multus_dir/multus.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{ name: cluster, cluster: { server: "$(api_server)", certificate-authority: "$sa/ca.crt" } }]
users: [{ name: multus, user: { tokenFile: "$sa/token" } }]
contexts: [{ name: multus, context: { cluster: cluster, user: multus } }]
current-context: multus
YAML
}

# The default network: the bridge plugin on the node's bridge, host-local addresses from the pod
# range.
# One plugin (a .conf, like OpenShift's 10-ovn-kubernetes.conf): thick Multus re-reads a
# .conflist default network for a CNI DEL without its cache (the runtime's second DEL) through
# typed structs that drop every plugin-specific field, and the bridge plugin then fails
# ("no IP ranges specified").
default_network_config() {
  cat <<JSON
{
  "cniVersion": "1.0.0",
  "name": "nc-default",
  "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
  "ipam": { "type": "host-local", "dataDir": "$dir/run/ipam",
            "ranges": [[{ "subnet": "$pod_cidr", "gateway": "$node_ip" }]] }
}
JSON
}

write_thin_multus_config() {
  cat > "$multus_cni_conf_dir/00-multus.conf" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "$multus_dir/multus.kubeconfig",
  "binDir": "$dir/cni/bin",
  "cniDir": "$dir/run/multus",
  "logFile": "$dir/log/multus.log",
  "logLevel": "verbose",
  "delegates": [$(default_network_config)]
}
JSON
}

# OpenShift's daemon-config.json, its paths mapped into the node's directory (left: OpenShift's
# path on the host; the daemon's container sees it under /host):
#   chrootDir /hostroot -> /: the daemon runs in the host's root already (write_multus_mounts'
#     mount namespace, nothing else), so CNI plugins run in that root, through the same chroot;
#   binDir /var/lib/cni/bin -> $dir/cni/bin: the node's CNI plugins;
#   cniConfigDir /etc/kubernetes/cni/net.d -> $multus_cni_conf_dir: the runtime's CNI
#     configuration directory, where the daemon writes 00-multus.conf for the shim;
#   multusAutoconfigDir and readinessindicatorfile /run/multus/cni/net.d/10-ovn-kubernetes.conf
#     -> $multus_dir/net.d/10-nc-default.conf: the default network's configuration, which
#     OVN-Kubernetes writes when it is ready, and which the daemon delegates to;
#   daemonSocketDir (the shim's view) and socketDir (the daemon's) /run/multus/socket ->
#     $dir/run/multus/socket;
#   cniDir (not set there: /var/lib/cni/multus) -> $dir/run/multus, as in thin mode;
#   globalNamespaces: default only (OpenShift adds its own operators' namespaces).
# The daemon logs to its log file ($dir/log/multus-daemon.log) through stderr.
write_thick_multus_config() {
  mkdir -p "$multus_dir/net.d"
  default_network_config > "$multus_dir/net.d/10-nc-default.conf"
  cat > "$multus_dir/daemon-config.json" <<JSON
{
  "cniVersion": "0.3.1",
  "chrootDir": "/",
  "logToStderr": true,
  "logLevel": "verbose",
  "binDir": "$dir/cni/bin",
  "cniConfigDir": "$multus_cni_conf_dir",
  "multusConfigFile": "auto",
  "multusAutoconfigDir": "$multus_dir/net.d",
  "namespaceIsolation": true,
  "globalNamespaces": "default",
  "readinessindicatorfile": "$multus_dir/net.d/10-nc-default.conf",
  "cniDir": "$dir/run/multus",
  "daemonSocketDir": "$dir/run/multus/socket",
  "socketDir": "$dir/run/multus/socket"
}
JSON
}

# Thick mode only: starts multus-daemon as its DaemonSet's pod would run it (in-cluster
# credentials at the standard path, the API server in KUBERNETES_SERVICE_HOST/PORT, the node in
# MULTUS_NODE_NAME), and waits until it has written the shim's configuration.
start_multus_daemon() {
  [[ $multus_mode == thick ]] || return 0
  log "starting multus-daemon"
  local host port
  host=$(api_server); host=${host#https://}; port=${host##*:}; host=${host%:*}
  rm -f "$multus_cni_conf_dir/00-multus.conf"
  start_daemon "$dir/multus-daemon.pid" "$dir/log/multus-daemon.log" \
    env KUBERNETES_SERVICE_HOST="$host" KUBERNETES_SERVICE_PORT="$port" MULTUS_NODE_NAME="$node_name" \
    setsid unshare --mount --propagation slave "$multus_dir/mounts" \
    "$multus_dir/multus-daemon" --config "$multus_dir/daemon-config.json"
  for _ in $(seq 300); do
    [[ -f $multus_cni_conf_dir/00-multus.conf ]] && return 0
    alive multus-daemon || break
    sleep 0.1
  done
  log "multus-daemon did not start; see $dir/log/multus-daemon.log"; tail -20 "$dir/log/multus-daemon.log" >&2; exit 1
}

stop_multus_daemon() { stop_component multus-daemon; }

api_server() { kubectl_ config view --minify -o jsonpath='{.clusters[0].cluster.server}'; }
