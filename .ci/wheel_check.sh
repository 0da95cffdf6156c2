#!/usr/bin/env bash
# The wheel as a user gets it: build it, install it into a fresh venv with the core only, then add the extras one at
# a time, and after each use what it brings the way a user would (`rdstd convert` with a shipped or written spec,
# then `rdstd.open` on the result: `python -m rdstd.demo --only FORMAT` does exactly that). Runs from a scratch
# folder, so nothing of the checkout is importable. Keep it under ~4 minutes (pip's cache makes reruns quick).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
step() { echo "wheel_check [$((SECONDS - started)) s]: $*"; }

step "building the wheel"
"$PY" -m pip wheel --no-deps --quiet -w "$work/dist" "$repo"
wheel="$(ls "$work"/dist/rdstd-*.whl)"
"$PY" -m venv "$work/venv"
py="$work/venv/bin/python"
rdstd="$work/venv/bin/rdstd"
cd "$work"

step "core: $(basename "$wheel")"
"$py" -m pip install --quiet "$wheel"
want="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/rdstd/__init__.py")"
test "$("$rdstd" --version)" = "rdstd $want"
"$rdstd" formats
"$rdstd" schema manifest > /dev/null
"$py" -c "import rdstd, rdstd.loader, rdstd.validate; from rdstd.convert.specs import shipped_specs; assert 'zarr/pusht' in shipped_specs()"
# a backend whose extra is missing says which extra to install, with exit 3
array='{"zarr_format": 2, "compressor": null, "fill_value": 0, "order": "C", "filters": null'
mkdir -p lone.zarr/meta/episode_ends lone.zarr/data/state
echo "$array, \"shape\": [1], \"chunks\": [1], \"dtype\": \"<i8\"}" > lone.zarr/meta/episode_ends/.zarray
echo "$array, \"shape\": [1, 2], \"chunks\": [1, 2], \"dtype\": \"<f4\"}" > lone.zarr/data/state/.zarray
set +e; "$rdstd" convert lone.zarr lone-out --rate 10 2> missing.txt; code=$?; set -e
cat missing.txt
test "$code" = 3 && grep -q "pip install 'rdstd\[zarr\]'" missing.txt

for pair in zarr:zarr rlds:rlds lerobot:lerobot hdf5:hdf5 ros:rosbag; do
  extra="${pair%%:*}"; format="${pair##*:}"
  step "[$extra]: convert a generated $format source and open the result"
  "$py" -m pip install --quiet "$wheel[$extra]"
  "$py" -m rdstd.demo "demo-$extra" --only "$format" > "demo-$extra.log" || { cat "demo-$extra.log"; exit 1; }
  "$py" -c "import rdstd, sys; ds = rdstd.open(sys.argv[1]); assert len(ds) > 0; print(' ', ds)" "demo-$extra/canonical/$format"
done
if "$py" -c "import tensorflow_datasets" 2> /dev/null; then
  echo "wheel_check: the rlds extra pulled tensorflow-datasets (only the tests use it)"; exit 1
fi

step "[cloud]: rdstd.open through fsspec (an in-memory filesystem stands for object storage)"
"$py" -m pip install --quiet "$wheel[cloud]"
"$py" -c "
import sys, fsspec, rdstd
fsspec.filesystem('memory').put(sys.argv[1], '/ds', recursive=True)
ds = rdstd.open('memory://ds'); assert len(ds) > 0; print(' ', ds)" "$work/demo-zarr/canonical/zarr"

step "[viewer]: rerun-sdk 0.41.x"
"$py" -m pip install --quiet "$wheel[viewer]"
"$py" -c "import rerun; assert rerun.__version__.startswith('0.41.'), rerun.__version__"

step "[all]: every backend and consumer together"
"$py" -m pip install --quiet "$wheel[all]"
"$py" -m pip check
"$rdstd" formats --format json | "$py" -c "import json, sys; d = json.load(sys.stdin); assert not d['unusable'], d; assert len(d['formats']) >= 5, d"
step "done"
