#!/usr/bin/env bash
# Build the environments in which LeRobot itself loads rdstd's exports (tests/formats/test_lerobot_export.py):
#   .venv-lerobot-0.4.4/  LeRobot 0.4.4 on Python 3.11 (the last release for 3.11), CPU torch 2.13.0
#   .venv-lerobot-0.6/    LeRobot 0.6.x on Python 3.12 (0.5+ need >= 3.12)
# Each gets bin/lerobot-python: the venv's interpreter with torchcodec pointed at the FFmpeg libraries that PyAV
# bundles (no system FFmpeg needed). The test finds them at these paths, or through RDSTD_LEROBOT_PYTHONS
# (paths separated by ':'). Re-running is cheap: a venv whose check import passes is kept.
#
# usage: bash .ci/lerobot_venvs.sh [0.4.4|0.6 ...]      (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

LEROBOT_06="${LEROBOT_06:-0.6.1}"

find_python() { # find_python 3.12 -> an interpreter of that minor version, or nothing
    local minor="$1" candidate
    for candidate in "python$minor" "$HOME/.pyenv/versions/$minor"*/bin/python"$minor" /usr/bin/python"$minor"; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import venv' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# torchvision's wheel on PyPI is built for CUDA torch; beside the CPU torch its C++ ops do not load and importing
# it fails with "operator torchvision::nms does not exist". Declaring the op schemas first lets the pure-Python
# parts (the only ones LeRobot's dataset code uses) import. lerobot_load_check.py imports it first.
write_torchvision_shim() {
    local site="$1"
    cat >"$site/tv_cpu_shim.py" <<'EOF'
"""Declare torchvision's C++ op schemas when its extension cannot load (CUDA wheel beside CPU torch)."""
try:
    import torch

    _lib = torch.library.Library("torchvision", "FRAGMENT")
    for _schema in (
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
        "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor",
        "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
        "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
        "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
        "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
        "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> (Tensor, Tensor)",
        "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
        "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
        "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    ):
        try:
            _lib.define(_schema)
        except RuntimeError:  # already there (the extension did load)
            pass

    _register_fake = torch.library.register_fake

    def _tolerant_register_fake(op, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Skip fake kernels of torchvision ops that do not exist (their C++ extension did not load)."""
        if isinstance(op, str) and op.startswith("torchvision::"):
            try:
                getattr(torch.ops.torchvision, op.split("::", 1)[1])
            except (AttributeError, RuntimeError):
                return (lambda fn: fn) if not args and kwargs.get("func") is None else args[0]
        return _register_fake(op, *args, **kwargs)

    torch.library.register_fake = _tolerant_register_fake
except ImportError:
    pass
EOF
}

# torchcodec dlopens FFmpeg by its standard sonames; PyAV's wheel bundles FFmpeg under hashed names. Link them.
write_launcher() {
    local venv="$1" site libs
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    libs="$venv/ffmpeg-libs"
    rm -rf "$libs" && mkdir -p "$libs"
    local f base soname
    for f in "$site"/av.libs/*.so*; do  # every bundled library under its own name (they need each other) ...
        ln -sf "$f" "$libs/$(basename "$f")"
    done
    for f in "$site"/av.libs/lib{avcodec,avformat,avutil,avdevice,avfilter,swscale,swresample}-*.so*; do
        [ -e "$f" ] || continue                       # ... and FFmpeg's under the standard soname
        base="$(basename "$f")"                       # libavcodec-1a2b3c4d.so.61.19.100
        soname="${base%%-*}.so.$(echo "$base" | sed -E 's/.*\.so\.([0-9]+).*/\1/')"
        ln -sf "$f" "$libs/$soname"
    done
    cat >"$venv/bin/lerobot-python" <<EOF
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$venv/bin/python" "\$@"
EOF
    chmod +x "$venv/bin/lerobot-python"
}

check() { # check VENV -> 0 when LeRobot's dataset class imports and torchcodec loads its FFmpeg
    [ -x "$1/bin/lerobot-python" ] && "$1/bin/lerobot-python" -c '
import torchcodec.decoders  # noqa: first, before PyAV has loaded its FFmpeg into the process
try:
    import tv_cpu_shim  # noqa
except ImportError:
    pass
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa
import torchcodec.decoders  # noqa
' >/dev/null 2>&1
}

build_044() {
    local venv="$PWD/.venv-lerobot-0.4.4" py
    if check "$venv"; then echo "lerobot 0.4.4: $venv is ready"; return 0; fi
    py="$(find_python 3.11)" || { echo "lerobot 0.4.4: no Python 3.11 found" >&2; return 1; }
    rm -rf "$venv"
    "$py" -m venv "$venv"
    local pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" "torch==2.13.0"
    # LeRobot 0.4.4 pins torch<2.11 / torchvision<0.26 / torchcodec<0.11, none of which has a CPU build for
    # Python 3.11 here; its dataset code runs with these (reads checked by the export test), so install it
    # without its pins and give it what its dataset modules import.
    "${pip[@]}" --no-deps "lerobot==0.4.4" "torchvision==0.28.0"
    "${pip[@]}" "torchcodec==0.13.0" "datasets>=4,<5" "huggingface-hub>=0.34.2,<0.36" "av>=15,<16" \
        "draccus==0.10.0" "accelerate>=1.10,<2" "jsonlines>=4,<5" "packaging>=24.2,<26" "einops>=0.8,<0.9" \
        "deepdiff>=7,<9" "termcolor>=2.4,<4" "imageio>=2.34,<3" "gymnasium>=1.1.1,<2" "pillow" "pandas" "pyarrow"
    write_torchvision_shim "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    write_launcher "$venv"
    check "$venv" || { echo "lerobot 0.4.4: built, but LeRobotDataset does not import:" >&2;
        "$venv/bin/lerobot-python" -c 'import tv_cpu_shim; from lerobot.datasets.lerobot_dataset import LeRobotDataset; import torchcodec.decoders' >&2; return 1; }
    echo "lerobot 0.4.4: $venv built"
}

build_06() {
    local venv="$PWD/.venv-lerobot-0.6" py
    if check "$venv"; then echo "lerobot 0.6: $venv is ready"; return 0; fi
    py="$(find_python 3.12)" || py="$(find_python 3.13)" || {
        echo "lerobot 0.6: needs Python >= 3.12 and none was found" >&2; return 1; }
    rm -rf "$venv"
    "$py" -m venv "$venv"
    # No CPU torch for Python 3.12 lies on this disk and PyPI only has CUDA builds for Linux x86_64: torch<2.12
    # (LeRobot 0.6's pin) comes from PyPI as a CUDA build, which runs on the CPU.
    # torchvision from PyPI matches that torch, so no shim is needed here.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "lerobot[dataset]==$LEROBOT_06"
    write_launcher "$venv"
    check "$venv" || { echo "lerobot 0.6: built, but LeRobotDataset does not import:" >&2;
        "$venv/bin/lerobot-python" -c 'from lerobot.datasets.lerobot_dataset import LeRobotDataset; import torchcodec.decoders' >&2; return 1; }
    echo "lerobot 0.6: $venv built"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(0.4.4 0.6)
status=0
for target in "${targets[@]}"; do
    started=$SECONDS
    case "$target" in
        0.4.4) build_044 || status=1 ;;
        0.6) build_06 || status=1 ;;
        *) echo "unknown target $target (0.4.4 or 0.6)" >&2; exit 2 ;;
    esac
    echo "lerobot $target: $((SECONDS - started)) s"
done
exit $status
