#!/usr/bin/env bash
# Cairn test platform: a real kube-apiserver + etcd + kube-controller-manager on loopback, built from
# the Go module proxy (no Docker, no internet beyond package registries). Recipe:
# /work/shared/reference/envtest.md. Usage: tests/support/platform.sh <command> [args]; see `help`.
set -euo pipefail

# ---- pins (newest patches the Go module proxy served when this was written, 2026-11) ------------
K8S_VERSION="${CAIRN_K8S_VERSION:-1.35.4}"     # match k8s-openapi feature v1_35
ETCD_VERSION="${CAIRN_ETCD_VERSION:-3.6.16}"
HELM_VERSION="${CAIRN_HELM_VERSION:-3.22.0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUPPORT_DIR="$REPO_ROOT/tests/support"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/cairn-test-platform"
DEFAULT_RUN_DIR="$REPO_ROOT/target/test-platform"
BINARIES=(kube-apiserver kube-controller-manager kubectl etcd helm)

# up/python/env print shell code for `eval "$(platform.sh up)"`. Since eval of an empty string
# succeeds, a failing run prints `false` on stdout so that `eval ... && next` stops.
EVAL_OUTPUT=0
trap 'rc=$?; if (( rc != 0 && EVAL_OUTPUT )); then echo false; fi' EXIT
die() { echo "platform.sh: error: $*" >&2; exit 1; }
log() { echo "platform.sh: $*" >&2; }

go_version() { command -v go >/dev/null || die "go is not installed (need Go >= 1.26 with the Go module proxy)"; go env GOVERSION; }

bin_dir() { echo "$CACHE_ROOT/k8s$K8S_VERSION-etcd$ETCD_VERSION-helm$HELM_VERSION-$(go_version)/bin"; }

# Prints the bin dir if every binary is present and reports the pinned version.
cached_ok() {
  local b; b="$(bin_dir)"
  for f in "${BINARIES[@]}"; do [[ -x "$b/$f" ]] || return 1; done
  # Capture before matching: `cmd | grep -q` under pipefail fails at random when grep exits
  # early and the command then dies of SIGPIPE.
  local out
  out="$("$b/kube-apiserver" --version 2>/dev/null)" || return 1
  grep -qx "Kubernetes v$K8S_VERSION" <<<"$out" || return 1
  out="$("$b/etcd" --version 2>/dev/null)" || return 1
  grep -q "etcd Version: $ETCD_VERSION" <<<"$out" || return 1
  out="$("$b/helm" version --template '{{.Version}}' 2>/dev/null)" || return 1
  grep -qx "v$HELM_VERSION" <<<"$out" || return 1
}

# ---- build ---------------------------------------------------------------------------------------
cmd_build() {
  local bin cdir logf
  bin="$(bin_dir)"; cdir="$(dirname "$bin")"; logf="$cdir/build.log"
  if cached_ok; then log "binaries cached in $bin"; return 0; fi
  command -v jq >/dev/null || die "jq is required (tests/support/platform.sh deps)"
  mkdir -p "$bin" "$cdir/src"
  echo "==== build started $(date -u +%FT%TZ)" >>"$logf"
  log "building Kubernetes v$K8S_VERSION, etcd v$ETCD_VERSION, helm v$HELM_VERSION into $bin (log: $logf)"

  export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  local build_date minor piece t0
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"

  fail() { # $1 = piece
    echo "platform.sh: error: could not build $1; log: $logf" >&2
    echo "---- last 40 lines of $logf ----" >&2; tail -n 40 "$logf" >&2; exit 1
  }
  step() { # $1 = piece, rest = command; runs in the current dir, logs and times it
    local p="$1"; shift; t0=$(date +%s)
    echo "==== [$p] $*" >>"$logf"
    nice -n 10 "$@" >>"$logf" 2>&1 || fail "$p"
    echo "==== [$p] done in $(( $(date +%s) - t0 ))s" >>"$logf"
  }
  timed() { # $1 = piece; records the wall time of a whole piece
    echo "$1 $(( $(date +%s) - $2 ))s" >>"$cdir/timings.txt"; log "built $1 in $(( $(date +%s) - $2 ))s"
  }

  # etcd: wrapper main module, no replaces needed (server/go.mod requires real versions).
  if ! "$bin/etcd" --version 2>/dev/null | grep -c "etcd Version: $ETCD_VERSION" >/dev/null; then
    piece=etcd; local ts; ts=$(date +%s)
    rm -rf "$cdir/src/etcd"; mkdir -p "$cdir/src/etcd"; cd "$cdir/src/etcd"
    step $piece go mod init cairn.local/etcdbin
    step $piece go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    step $piece go build -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$bin/etcd.tmp" "$bin/etcd"; timed etcd "$ts"
  fi

  # Kubernetes: wrapper main module; replace every staging module (required as v0.0.0 in
  # k8s.io/kubernetes' go.mod) by its published tag v0.<minor>.<patch>. Derived, not hard-coded.
  local kdir="$cdir/src/k8s"
  if [[ ! -f "$kdir/.ready" ]]; then
    piece="kubernetes modules"; local ts; ts=$(date +%s)
    rm -rf "$kdir"; mkdir -p "$kdir"; cd "$kdir"
    step "$piece" go mod init cairn.local/k8sbins
    local gomod goline godebug staging
    gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" 2>>"$logf" | jq -r .GoMod)" || fail "$piece"
    [[ -f "$gomod" ]] || fail "$piece (no go.mod for k8s.io/kubernetes@v$K8S_VERSION)"
    goline="$(awk '$1=="go"{print $2; exit}' "$gomod")"
    godebug="$(awk '$1=="godebug"{print $2; exit}' "$gomod")"
    step "$piece" go mod edit "-go=$goline"
    [[ -n "$godebug" ]] && step "$piece" go mod edit "-godebug=$godebug"
    staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)"
    [[ -n "$staging" ]] || fail "$piece (found no staging modules in $gomod)"
    echo "staging modules ($(echo "$staging" | wc -l)): $(echo "$staging" | tr '\n' ' ')" >>"$logf"
    local m; for m in $staging; do step "$piece" go mod edit "-replace=$m=$m@v0.${K8S_VERSION#1.}"; done
    step "$piece" go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
    touch .ready; timed "kubernetes-modules" "$ts"
  fi
  cd "$kdir"
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  local c
  for c in kube-apiserver kube-controller-manager kubectl; do
    if "$bin/$c" --version 2>/dev/null | grep -c "v$K8S_VERSION" >/dev/null \
       || { [[ $c == kubectl ]] && "$bin/$c" version --client 2>/dev/null | grep -c "v$K8S_VERSION" >/dev/null; }; then
      continue
    fi
    local ts; ts=$(date +%s)
    step "$c" go build -ldflags "$ld" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$bin/$c.tmp" "$bin/$c"; timed "$c" "$ts"
  done

  # helm: no replace directives upstream, so `go install pkg@version` works.
  if ! "$bin/helm" version --template '{{.Version}}' 2>/dev/null | grep -cx "v$HELM_VERSION" >/dev/null; then
    local ts hmod cgo hld; ts=$(date +%s); cd "$cdir"
    # Like helm's Makefile: the default .Capabilities.KubeVersion is derived from its client-go.
    hmod="$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" 2>>"$logf" | jq -r .GoMod)" || fail helm
    cgo="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$hmod")"   # e.g. v0.37.0 -> Kubernetes 1.37
    hld="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
    hld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    if [[ "$cgo" =~ ^v0\.([0-9]+)\. ]]; then
      for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        hld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=${BASH_REMATCH[1]}"
      done
    fi
    step helm env GOBIN="$cdir/helm-gobin" go install -ldflags "$hld" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
    mv "$cdir/helm-gobin/helm" "$bin/helm"; rmdir "$cdir/helm-gobin" || true; timed helm "$ts"
  fi

  cached_ok || { tail -n 20 "$logf" >&2; die "binaries built but version check failed (see $logf)"; }
  log "done: $bin"
}

# ---- up / down -----------------------------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 30000 ))
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    if port_free "$p"; then USED_PORTS+="$p "; echo "$p"; return 0; fi
  done
  die "found no free loopback port"
}

# $1 = run dir; $2 = name; rest = command. Detached (own session, no inherited fds) so that
# `eval "$(platform.sh up)"` returns; pid recorded in DIR/NAME.pid, output in DIR/NAME.log.
start_bg() {
  local dir="$1" name="$2"; shift 2
  setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

# $1 = description, $2 = log file, $3 = timeout seconds, rest = probe command
wait_for() {
  local what="$1" logf="$2" timeout="$3"; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      echo "platform.sh: error: $what not ready after ${timeout}s; last 30 lines of $logf:" >&2
      tail -n 30 "$logf" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

alive() { # $1 = dir, $2 = name: the recorded pid runs a binary from our bin dir
  local pf="$1/$2.pid" pid
  [[ -f "$pf" ]] || return 1
  pid="$(cat "$pf")"
  local cmdline; cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"/$2 "* && "$cmdline" == *"$1/"* ]]
}

print_env() { # $1 = dir
  local bin; bin="$(bin_dir)"
  cat <<EOT
export KUBECONFIG='$1/kubeconfig'
export CAIRN_TEST_KUBECONFIG='$1/kubeconfig'
export CAIRN_TEST_PLATFORM_BIN='$bin'
export CAIRN_TEST_PLATFORM_DIR='$1'
EOT
}

gen_certs() { # $1 = cert dir
  local c="$1"
  cat >"$c/ca.cnf" <<'EOT'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = cairn-test-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOT
  cat >"$c/serving.ext" <<'EOT'
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOT
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -config "$c/ca.cnf" -keyout "$c/ca.key" -out "$c/ca.crt"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$c/serving.key" -out "$c/serving.csr"
    openssl x509 -req -in "$c/serving.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial -days 30 \
      -extfile "$c/serving.ext" -out "$c/serving.crt"
    openssl genrsa -out "$c/sa.key" 2048
    openssl rsa -in "$c/sa.key" -pubout -out "$c/sa.pub"
  } >>"$c/openssl.log" 2>&1 || { tail -n 20 "$c/openssl.log" >&2; die "openssl failed to generate certificates"; }
}

cmd_up() {
  local dir="${1:-$DEFAULT_RUN_DIR}" bin timeout="${CAIRN_TEST_PLATFORM_TIMEOUT:-120}" t0
  t0=$(date +%s)
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  bin="$(bin_dir)"
  cached_ok || die "binaries missing in $bin: run 'tests/support/platform.sh build' first"
  if alive "$dir" kube-apiserver && alive "$dir" etcd && alive "$dir" kube-controller-manager; then
    log "already up in $dir"; print_env "$dir"; return 0
  fi
  if ls "$dir"/*.pid >/dev/null 2>&1; then cmd_down "$dir"; fi

  local certs="$dir/certs" ep pp ap kp token
  rm -rf "$dir/etcd-data" "$certs" "$dir"/*.log; mkdir -p "$certs" "$dir/etcd-data"; chmod 700 "$dir/etcd-data"
  gen_certs "$certs"
  ep=$(free_port); pp=$(free_port); ap=$(free_port); kp=$(free_port)
  token="$(openssl rand -hex 24)"
  echo "$token,admin,admin-uid,system:masters" >"$certs/tokens.csv"; chmod 600 "$certs/tokens.csv"
  cat >"$dir/kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: cairn-test
  cluster:
    server: https://127.0.0.1:$ap
    certificate-authority-data: $(base64 -w0 <"$certs/ca.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: cairn-test
  context: {cluster: cairn-test, user: admin}
current-context: cairn-test
EOT
  chmod 600 "$dir/kubeconfig"

  start_bg "$dir" etcd "$bin/etcd" --name default --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "default=http://127.0.0.1:$pp" --unsafe-no-fsync --log-level warn
  wait_for etcd "$dir/etcd.log" "$timeout" sh -c "curl -fsS http://127.0.0.1:$ep/health | grep -q '\"health\":\"true\"'" \
    || { cmd_down "$dir" >&2; die "the control plane did not start (logs in $dir)"; }

  local api=("$bin/kube-apiserver"
    --etcd-servers="http://127.0.0.1:$ep" --bind-address=127.0.0.1 --secure-port="$ap"
    --cert-dir="$certs" --tls-cert-file="$certs/serving.crt" --tls-private-key-file="$certs/serving.key"
    --client-ca-file="$certs/ca.crt" --token-auth-file="$certs/tokens.csv"
    --service-account-issuer="https://127.0.0.1:$ap" --service-account-key-file="$certs/sa.pub"
    --service-account-signing-key-file="$certs/sa.key"
    --authorization-mode=RBAC --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true
    --profiling=false --v=1)
  # Kept for apiserver-start (the outage test stops and starts it with the same flags).
  printf '%q ' "${api[@]}" >"$dir/kube-apiserver.cmd"; echo "$ap" >"$dir/kube-apiserver.port"
  start_bg "$dir" kube-apiserver "${api[@]}"
  wait_for kube-apiserver "$dir/kube-apiserver.log" "$timeout" \
    sh -c "curl -fsS --cacert '$certs/ca.crt' https://127.0.0.1:$ap/readyz | grep -qx ok" \
    || { cmd_down "$dir" >&2; die "the control plane did not start (logs in $dir)"; }

  start_bg "$dir" kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/kubeconfig" --authentication-kubeconfig="$dir/kubeconfig" \
    --authorization-kubeconfig="$dir/kubeconfig" --leader-elect=false --controllers='*' \
    --root-ca-file="$certs/ca.crt" --service-account-private-key-file="$certs/sa.key" \
    --use-service-account-credentials=false --bind-address=127.0.0.1 --secure-port="$kp" \
    --cert-dir="$certs/kcm" --profiling=false --v=1
  # Ready when its service-account controller has created default/default.
  wait_for kube-controller-manager "$dir/kube-controller-manager.log" "$timeout" \
    curl -fsS --cacert "$certs/ca.crt" -H "Authorization: Bearer $token" \
      "https://127.0.0.1:$ap/api/v1/namespaces/default/serviceaccounts/default" \
    || { cmd_down "$dir" >&2; die "the control plane did not start (logs in $dir)"; }
  log "up in $(( $(date +%s) - t0 ))s: https://127.0.0.1:$ap (etcd :$ep, controller-manager :$kp), logs in $dir"
  print_env "$dir"
}

# Stops only kube-apiserver (etcd and the controller-manager keep running): an API outage.
cmd_apiserver_stop() {
  local dir="${1:-$DEFAULT_RUN_DIR}" pid
  dir="$(cd "$dir" && pwd)"
  alive "$dir" kube-apiserver || die "kube-apiserver is not running in $dir"
  pid="$(cat "$dir/kube-apiserver.pid")"
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$dir/kube-apiserver.pid"; log "stopped kube-apiserver ($pid)"
}

# Starts kube-apiserver again with the flags 'up' used, and waits until it is ready.
cmd_apiserver_start() {
  local dir="${1:-$DEFAULT_RUN_DIR}" ap
  dir="$(cd "$dir" && pwd)"
  [[ -f "$dir/kube-apiserver.cmd" ]] || die "no kube-apiserver.cmd in $dir: run 'up' first"
  alive "$dir" kube-apiserver && { log "kube-apiserver already runs"; return 0; }
  local api; eval "api=($(cat "$dir/kube-apiserver.cmd"))"
  ap="$(cat "$dir/kube-apiserver.port")"
  start_bg "$dir" kube-apiserver "${api[@]}"
  wait_for kube-apiserver "$dir/kube-apiserver.log" "${CAIRN_TEST_PLATFORM_TIMEOUT:-120}" \
    sh -c "curl -fsS --cacert '$dir/certs/ca.crt' https://127.0.0.1:$ap/readyz | grep -qx ok" \
    || die "kube-apiserver did not start again (log: $dir/kube-apiserver.log)"
  log "kube-apiserver ready again on :$ap"
}

cmd_down() {
  local dir="${1:-$DEFAULT_RUN_DIR}" name pid
  [[ -d "$dir" ]] || { log "nothing to stop in $dir"; return 0; }
  dir="$(cd "$dir" && pwd)"
  for name in kube-controller-manager kube-apiserver etcd; do
    if alive "$dir" "$name"; then
      pid="$(cat "$dir/$name.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored TERM; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
      log "stopped $name ($pid)"
    fi
    rm -f "$dir/$name.pid"
  done
  rm -rf "$dir/etcd-data" "$dir/certs" "$dir/kubeconfig" "$dir/kube-apiserver.cmd" "$dir/kube-apiserver.port"
}

# ---- python venv with the official SDKs ----------------------------------------------------------
cmd_python() {
  local req="$SUPPORT_DIR/requirements.txt" py="${CAIRN_TEST_PYTHON_BASE:-python3}" hash venv
  command -v "$py" >/dev/null || die "$py not found (tests/support/platform.sh deps)"
  hash="$( { cat "$req"; "$py" --version; } | sha256sum | cut -c1-12)"
  venv="$CACHE_ROOT/py-$hash"
  if [[ ! -f "$venv/.ok" ]]; then
    log "creating Python venv $venv from $req"
    rm -rf "$venv"; mkdir -p "$CACHE_ROOT"
    {
      "$py" -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    } >"$CACHE_ROOT/py-$hash.log" 2>&1 || {
      tail -n 30 "$CACHE_ROOT/py-$hash.log" >&2; die "could not create the Python venv (log: $CACHE_ROOT/py-$hash.log)"; }
    touch "$venv/.ok"
  fi
  echo "export CAIRN_TEST_PYTHON='$venv/bin/python'"
}

# ---- system packages -----------------------------------------------------------------------------
cmd_deps() {
  local missing=() sudo=""
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v jq >/dev/null || missing+=(jq)
  command -v curl >/dev/null || missing+=(curl ca-certificates)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v setsid >/dev/null || missing+=(util-linux)
  command -v musl-gcc >/dev/null || missing+=(musl-tools)   # the image's static binary (tests/image.rs)
  command -v prometheus >/dev/null || missing+=(prometheus) # evaluates the dashboard's queries (tests/telemetry.rs)
  command -v go >/dev/null || log "warning: go is not installed; 'build' needs Go >= 1.26 and the Go module proxy"
  (( ${#missing[@]} )) || { log "system packages present"; return 0; }
  [[ $(id -u) == 0 ]] || sudo=sudo
  log "installing ${missing[*]}"
  { $sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 \
    || die "apt-get install ${missing[*]} failed"
}

usage() {
  cat <<EOT
usage: tests/support/platform.sh <command> [DIR]
  deps       apt-get install what is missing (redis-server, openssl, jq, curl, python3-venv, musl-tools, prometheus)
  build      build kube-apiserver, kube-controller-manager, kubectl (v$K8S_VERSION), etcd (v$ETCD_VERSION),
             helm (v$HELM_VERSION) into $CACHE_ROOT (seconds when cached)
  python     create/reuse the venv from tests/support/requirements.txt; prints export CAIRN_TEST_PYTHON=...
  tools      build/reuse the install tests' tools (kubeconform, helm-unittest, Lua and kstatus judges,
             Dockerfile parser, CEL cost report, schemas) (tests/support/tools.sh); prints export CAIRN_TEST_TOOLS=...
  up [DIR]   start etcd, kube-apiserver, kube-controller-manager (DIR defaults to target/test-platform);
             prints eval-able exports (KUBECONFIG, CAIRN_TEST_KUBECONFIG, CAIRN_TEST_PLATFORM_BIN, ...)
  env [DIR]  print the exports of a running platform
  down [DIR] stop exactly the processes 'up' started (pid files) and remove the data
  apiserver-stop [DIR]   stop only kube-apiserver (an API outage; etcd and the controller-manager stay)
  apiserver-start [DIR]  start it again with the same flags and wait until it is ready
  bin        print the bin dir
Typical: eval "\$(tests/support/env.sh)"; trap 'tests/support/platform.sh down' EXIT; cargo test
EOT
}

main() {
  local c="${1:-help}"; shift || true
  # shellcheck disable=SC2034 # read by the EXIT trap
  case "$c" in up|python|tools|env) EVAL_OUTPUT=1 ;; esac
  case "$c" in
    deps) cmd_deps ;;
    build) cmd_build ;;
    python) cmd_python ;;
    tools) "$SUPPORT_DIR/tools.sh" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    apiserver-stop) cmd_apiserver_stop "$@" ;;
    apiserver-start) cmd_apiserver_start "$@" ;;
    env) local d="${1:-$DEFAULT_RUN_DIR}"; alive "$d" kube-apiserver || die "platform not running in $d"; print_env "$(cd "$d" && pwd)" ;;
    bin) bin_dir ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}
main "$@"
