#!/usr/bin/env bash
# The install tests' tools, built from Go modules (and one PyPI wheel) and cached like the control
# plane: `tests/support/platform.sh tools` (env.sh calls it) prints `export CAIRN_TEST_TOOLS=DIR`.
#
# DIR/bin:       kubeconform, celcost, argo-health, kstatus, dockerfile-check (the last four are
#                the small programs under tests/support/tools/, with their go.mod/go.sum pinned),
#                jaeger (the OTLP receiver and trace store of the telemetry tests, cmd/jaeger)
# DIR/helm-plugins/unittest: helm-unittest as a helm plugin (HELM_PLUGINS=DIR/helm-plugins)
# DIR/k8s-json-schema/v1.35.0-local-strict: Kubernetes' JSON schemas for kubeconform, from the
#                PyPI package kubernetes-validate (the wheel is read, nothing is installed)
# DIR/crds:      published CRDs of the GitOps tools and the Prometheus operator, from their Go
#                modules: Argo CD's Application, Flux's Kustomization and GitRepository, the
#                ServiceMonitor; and Flux's HelmRelease, whose CRD no module ships: generated from
#                its published API module by controller-gen, the generator upstream uses
#
# The directory name is a hash of this script and tests/support/tools/, so a change rebuilds.
set -euo pipefail

KUBECONFORM_VERSION=v0.8.0
HELM_UNITTEST_VERSION=v1.1.2
KUBERNETES_VALIDATE_VERSION=1.35.0       # its v1.35.0 schemas match the control plane's minor
SCHEMA_DIR_NAME=v1.35.0-local-strict
ARGO_CD_MODULE=github.com/argoproj/argo-cd/v3@v3.5.7                 # newest that Go 1.26 may fetch
FLUX_KUSTOMIZE_MODULE=github.com/fluxcd/kustomize-controller@v1.9.6  # idem
FLUX_SOURCE_MODULE=github.com/fluxcd/source-controller@v1.9.6        # idem
FLUX_HELM_API_MODULE=github.com/fluxcd/helm-controller/api@v1.6.5    # the HelmRelease types
CONTROLLER_TOOLS_VERSION=v0.23.0
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator@v0.85.0
JAEGER_VERSION=v1.75.0                   # the Go module's tag of Jaeger v2's cmd/jaeger
OWN_TOOLS=(celcost argo-health kstatus dockerfile-check)

SUPPORT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/cairn-test-platform"
log() { echo "tools.sh: $*" >&2; }
die() { echo "tools.sh: error: $*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed (need Go >= 1.26 with the Go module proxy)"
key="$( { cat "${BASH_SOURCE[0]}"; find "$SUPPORT_DIR/tools" -type f | sort | xargs cat; go env GOVERSION; } | sha256sum | cut -c1-12)"
DIR="$CACHE_ROOT/tools-$key"
if [[ -f "$DIR/.ok" ]]; then
  log "tools cached in $DIR"
  echo "export CAIRN_TEST_TOOLS='$DIR'"
  exit 0
fi

rm -rf "$DIR"; mkdir -p "$DIR/bin" "$DIR/src" "$DIR/crds" "$DIR/helm-plugins/unittest"
logf="$DIR/build.log"
log "building the install-test tools into $DIR (log: $logf)"
# The control plane's build flags, so that the Go build cache it left is reused.
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
step() { # $1 = what; rest = command
  local what="$1" t0; shift; t0=$(date +%s)
  echo "==== [$what] $*" >>"$logf"
  nice -n 10 "$@" >>"$logf" 2>&1 || { tail -n 30 "$logf" >&2; die "$what failed (log: $logf)"; }
  echo "$what $(( $(date +%s) - t0 ))s" >>"$DIR/timings.txt"
}

for t in "${OWN_TOOLS[@]}"; do
  step "$t" env -C "$SUPPORT_DIR/tools/$t" GOFLAGS="$GOFLAGS -mod=readonly" go build -ldflags "-s -w" -o "$DIR/bin/$t" .
done

step kubeconform env GOBIN="$DIR/bin" go install \
  -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"

# helm-unittest's go.mod has a replace directive, which `go install pkg@version` refuses: build it
# from a wrapper module that repeats the replace (read from its go.mod, not hard-coded).
hu="$DIR/src/helm-unittest"; mkdir -p "$hu"
humod="$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" | jq -r .GoMod)"
step helm-unittest go -C "$hu" mod init cairn.local/helm-unittest
while read -r from _ to; do
  step helm-unittest go -C "$hu" mod edit "-replace=$from=$to"
done < <(awk '$1=="replace"{print $2"@"$3, $4, $5"@"$6}' "$humod")
step helm-unittest go -C "$hu" get -tool "github.com/helm-unittest/helm-unittest/cmd/helm-unittest@$HELM_UNITTEST_VERSION"
step helm-unittest go -C "$hu" build -ldflags "-s -w" -o "$DIR/helm-plugins/unittest/untt" github.com/helm-unittest/helm-unittest/cmd/helm-unittest
cat >"$DIR/helm-plugins/unittest/plugin.yaml" <<EOT
name: "unittest"
version: "${HELM_UNITTEST_VERSION#v}"
usage: "unittest for helm charts"
description: "helm-unittest $HELM_UNITTEST_VERSION, built from its Go module by tests/support/tools.sh"
command: "\$HELM_PLUGIN_DIR/untt"
EOT

# Jaeger: its go.mod has a replace directive too (written `old => new version`), repeated in a
# wrapper module the same way.
jg="$DIR/src/jaeger"; mkdir -p "$jg"
jgmod="$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" | jq -r .GoMod)"
step jaeger go -C "$jg" mod init cairn.local/jaeger
while read -r r; do
  step jaeger go -C "$jg" mod edit "-replace=$r"
done < <(sed -nE 's/^replace +([^ ]+)( ([^ ]+))? +=> +([^ ]+)( ([^ ]+))?$/\1\2=\4@\6/p' "$jgmod" | sed -E 's/ /@/; s/@$//')
step jaeger go -C "$jg" get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
step jaeger go -C "$jg" build -ldflags "-s -w" -o "$DIR/bin/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger

# Kubernetes JSON schemas: one directory of the kubernetes-validate wheel.
py="${CAIRN_TEST_PYTHON:-python3}"
step kubernetes-validate "$py" -m pip download --quiet --disable-pip-version-check --no-deps \
  -d "$DIR/src/wheel" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
step kubernetes-validate "$py" - "$DIR/src/wheel" "$DIR/k8s-json-schema" "$SCHEMA_DIR_NAME" <<'EOT'
import glob, json, os, sys, zipfile
wheel, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
(path,) = glob.glob(os.path.join(wheel, "*.whl"))
prefix = f"kubernetes_validate/kubernetes-json-schema/{name}/"
with zipfile.ZipFile(path) as z:
    members = [m for m in z.namelist() if m.startswith(prefix) and m.endswith(".json")]
    assert members, f"no {prefix} in {path}"
    for m in members:
        dest = os.path.join(out, name, m[len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        # Their $id is an https URL and their references point at /api/_definitions.json under
        # it; without the $id and with relative references, they resolve next to the file, offline.
        text = z.read(m).decode().replace('"/api/_definitions.json#', '"_definitions.json#')
        schema = json.loads(text)
        schema.pop("$id", None)
        with open(dest, "w") as f:
            json.dump(schema, f)
EOT
rm -rf "$DIR/src/wheel"

# Published CRDs, from the module zips the Go module proxy serves.
crd_from_module() { # $1 = module@version, $2 = path in the module
  local d t0; t0=$(date +%s)
  d="$(go mod download -json "$1" 2>>"$logf" | jq -r .Dir)" || die "could not download $1 (log: $logf)"
  [[ -f "$d/$2" ]] || die "$1 has no $2"
  cp "$d/$2" "$DIR/crds/"
  echo "${1%@*} $(( $(date +%s) - t0 ))s" >>"$DIR/timings.txt"
}
crd_from_module "$ARGO_CD_MODULE" manifests/crds/application-crd.yaml
crd_from_module "$FLUX_KUSTOMIZE_MODULE" config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml
crd_from_module "$PROMETHEUS_OPERATOR_MODULE" example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
crd_from_module "$FLUX_SOURCE_MODULE" config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml

# HelmRelease: controller-gen over a writable copy of the API module (go/packages needs one).
cg="$DIR/src/controller-gen"; mkdir -p "$cg"
step controller-gen go -C "$cg" mod init cairn.local/controller-gen
step controller-gen go -C "$cg" get -tool "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION"
step controller-gen go -C "$cg" build -ldflags "-s -w" -o "$DIR/src/controller-gen/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen
api="$DIR/src/helm-controller-api"
cp -r "$(go mod download -json "$FLUX_HELM_API_MODULE" | jq -r .Dir)" "$api"; chmod -R u+w "$api"
step helmrelease-crd env -C "$api" "$cg/controller-gen" crd paths=./v2/... "output:crd:dir=$DIR/crds"
[[ -f "$DIR/crds/helm.toolkit.fluxcd.io_helmreleases.yaml" ]] || die "controller-gen wrote no HelmRelease CRD"
rm -rf "$api"

touch "$DIR/.ok"
log "done: $DIR ($(paste -sd' ' "$DIR/timings.txt"))"
echo "export CAIRN_TEST_TOOLS='$DIR'"
