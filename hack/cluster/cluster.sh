#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver,
# kube-scheduler and kube-controller-manager built by hack/cluster/build.sh.
#
#   hack/cluster/cluster.sh up       start (idempotent: a healthy cluster is reused)
#   hack/cluster/cluster.sh down     stop and remove all state (idempotent)
#   hack/cluster/cluster.sh status   exit 0 when the API server answers
#   hack/cluster/cluster.sh env      print NETCLAIM_KUBECONFIG=... for tests
#
# State lives in $NETCLAIM_CLUSTER_DIR (default /tmp/nc-cluster): certificates,
# service-account keys, token file, kubeconfigs (admin.kubeconfig is
# system:masters), logs and etcd data. DRA's resource.k8s.io/v1 is served by
# default from 1.34. Ports are configurable so two checkouts can coexist.
#
# K8S_VERSION=$K8S_NEWEST runs the newest supported release instead, beside
# the default one: its own state directory and ports unless those are set.
#
# The API server writes an audit log ($dir/audit.log, JSON lines) of every
# request the netclaim agent's ServiceAccount makes, and nothing else: the RBAC
# usage test compares it with the shipped ClusterRole.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/../lib/fds.sh"
if [[ $K8S_VERSION == "$K8S_DEFAULT" ]]; then
  dir=${NETCLAIM_CLUSTER_DIR:-/tmp/nc-cluster}
  api_port=${NETCLAIM_CLUSTER_API_PORT:-16443}
  etcd_port=${NETCLAIM_CLUSTER_ETCD_PORT:-12379}
else
  dir=${NETCLAIM_CLUSTER_DIR:-/tmp/nc-cluster-$K8S_VERSION}
  api_port=${NETCLAIM_CLUSTER_API_PORT:-16444}
  etcd_port=${NETCLAIM_CLUSTER_ETCD_PORT:-12381}
fi
server="https://127.0.0.1:$api_port"
# MutatingAdmissionPolicy (deploy/required-plugin) is GA from 1.36; before, a
# beta API that is off unless asked for, as docs/install.md tells users to.
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
admission_policy_flags=()
if ((minor < 36)); then
  admission_policy_flags=(--feature-gates MutatingAdmissionPolicy=true --runtime-config admissionregistration.k8s.io/v1beta1=true)
fi

log() { echo "cluster: $*" >&2; }

api_ready() {
  local token; token=$(grep -m1 ',admin,admin,' "$dir/tokens.csv" 2>/dev/null | cut -d, -f1) || return 1
  curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz" >/dev/null 2>&1
}

# Every component alive and the API server ready.
healthy() {
  [[ -f $dir/admin.kubeconfig ]] || return 1
  for name in etcd kube-apiserver kube-scheduler kube-controller-manager; do
    kill -0 "$(cat "$dir/$name.pid" 2>/dev/null)" 2>/dev/null || return 1
  done
  api_ready
}

stop_all() {
  for name in kube-controller-manager kube-scheduler kube-apiserver etcd; do
    local pidfile="$dir/$name.pid"
    [[ -f $pidfile ]] || continue
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

# start <name> <binary> args...: runs in the background, logs to $dir/<name>.log
# (hack/lib/fds.sh: no inherited descriptor, so no caller's lock, goes with it).
start() {
  local name=$1; shift
  start_daemon "$dir/$name.pid" "$dir/$name.log" nohup "$@"
}

wait_for() {
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up in ${seconds}s; last log lines:"
  tail -20 "$dir/$what.log" >&2 || true
  return 1
}

make_pki() {
  local pki="$dir/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=netclaim-test-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,IP:10.0.0.1\n' >"$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# kubeconfig <file> <token>
kubeconfig() {
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: netclaim-test
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$dir/pki/ca.crt")
users:
- name: user
  user:
    token: $2
contexts:
- name: netclaim-test
  context: {cluster: netclaim-test, user: user}
current-context: netclaim-test
KUBECONFIG
}

up() {
  if healthy; then log "already running at $server"; return 0; fi
  stop_all
  local bin; bin=$("$here/build.sh")
  rm -rf "$dir" && mkdir -p "$dir"
  make_pki
  local admin scheduler controller
  admin="admin-$(openssl rand -hex 16)"
  scheduler="scheduler-$(openssl rand -hex 16)"
  controller="controller-$(openssl rand -hex 16)"
  {
    echo "$admin,admin,admin,system:masters"
    echo "$scheduler,system:kube-scheduler,system:kube-scheduler"
    echo "$controller,system:kube-controller-manager,system:kube-controller-manager"
  } >"$dir/tokens.csv"
  kubeconfig "$dir/admin.kubeconfig" "$admin"
  kubeconfig "$dir/scheduler.kubeconfig" "$scheduler"
  kubeconfig "$dir/controller-manager.kubeconfig" "$controller"
  cat >"$dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["system:serviceaccount:netclaim:netclaim-agent"]
  - level: None
POLICY

  start etcd "$bin/etcd" --name nc-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls http://127.0.0.1:0 --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  # No endpoint reconciler: nothing reaches the API server through the
  # kubernetes Service here, and from 1.37 it refuses a loopback address.
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address 127.0.0.1 \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --token-auth-file "$dir/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$dir/pki/sa.pub" \
    --service-account-signing-key-file "$dir/pki/sa.key" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --endpoint-reconciler-type none \
    "${admission_policy_flags[@]}" \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --audit-log-format json --audit-log-mode blocking \
    --v=1
  wait_for kube-apiserver 120 api_ready

  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --service-account-private-key-file "$dir/pki/sa.key" \
    --root-ca-file "$dir/pki/ca.crt" \
    --use-service-account-credentials \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --v=1
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --v=1
  # The controllers create the default ServiceAccount; tests need it.
  wait_for kube-controller-manager 60 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get serviceaccount default -n default
  for name in kube-scheduler kube-controller-manager; do
    kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || { log "$name exited:"; tail -20 "$dir/$name.log" >&2; return 1; }
  done
  log "up at $server (Kubernetes $K8S_VERSION); admin kubeconfig $dir/admin.kubeconfig"
}

case ${1:-} in
  up) up || { stop_all; exit 1; } ;;
  down) stop_all; rm -rf "$dir"; log "down" ;;
  status) healthy ;;
  env)
    echo "NETCLAIM_KUBECONFIG=$dir/admin.kubeconfig"
    echo "NETCLAIM_KUBE_BIN=$("$here/build.sh")"
    echo "NETCLAIM_AUDIT_LOG=$dir/audit.log"
    echo "NETCLAIM_KUBE_VERSION=$K8S_VERSION"
    ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
