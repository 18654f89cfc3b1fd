#!/usr/bin/env bash
# The steps of the Dockerfile's stages, in one place for both images.
#   image.sh build cpu|cuda   makes /opt/tuneforge/pyenv with the pinned torch (cpu: the CPU-only wheel from
#                             TORCH_CPU_INDEX, if set), builds tuneforge-metadata, tuneforge-trainer and tuneforge
#                             against it, and stages them with torch's libraries under /stage at their final paths.
#   image.sh check            in a runtime image: every binary finds its shared libraries and answers --help.
set -euo pipefail
venv=/opt/tuneforge/pyenv
bins=(tuneforge-metadata tuneforge-trainer tuneforge)

case "${1:-}" in
  build)
    variant="${2:?cpu or cuda}"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # The requirements file pins torch and its nvidia-* wheels; as constraints it installs only what torch needs.
    torch=torch
    index=()
    if [ "$variant" = cpu ] && [ -n "${TORCH_CPU_INDEX:-}" ]; then
      torch="torch==$(sed -n 's/^torch==//p' scripts/python-requirements.txt)+cpu"
      index=(--index-url "$TORCH_CPU_INDEX" --extra-index-url https://pypi.org/simple)
    fi
    # pyarrow: its wheel carries the Arrow C++ libraries that read Parquet datasets.
    "$venv/bin/python" -m pip install -q --progress-bar off -c scripts/python-requirements.txt "${index[@]}" "$torch" \
      pyarrow
    "$venv/bin/python" -c 'import torch; print("tuneforge image: torch", torch.__version__, "CUDA", torch.version.cuda)'
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTUNEFORGE_BUILD_TESTS=OFF -DTUNEFORGE_TORCH="$venv/bin/python"
    cmake --build build -j "${BUILD_JOBS:-$(nproc)}" --target "${bins[@]}"
    trainer=build/services/trainer/tuneforge-trainer
    if [ "$variant" = cuda ] && ! readelf -d "$trainer" | grep -q 'libtorch_cuda\.so'; then
      echo "the trainer does not link libtorch_cuda: it would never see a GPU" >&2
      exit 1
    fi
    # torch/lib finds the CUDA libraries through its relative RUNPATH ($ORIGIN/../../nvidia/...), and the binaries
    # find torch/lib through an absolute one: keep the site-packages layout and path.
    sp="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
    mkdir -p /stage/usr/local/bin "/stage$sp/torch"
    cp build/services/metadata/tuneforge-metadata "$trainer" build/services/cli/tuneforge /stage/usr/local/bin/
    cp -a "$sp/torch/lib" "/stage$sp/torch/"
    for extra in torch.libs nvidia; do
      if [ -d "$sp/$extra" ]; then cp -a "$sp/$extra" "/stage$sp/"; fi
    done
    # Arrow's libraries, found by the binaries through the absolute RUNPATH of the pyarrow folder.
    mkdir -p "/stage$sp/pyarrow"
    cp -a "$sp"/pyarrow/libarrow.so.* "$sp"/pyarrow/libparquet.so.* "/stage$sp/pyarrow/"
    ;;
  check)
    for b in "${bins[@]}"; do
      if ldd "/usr/local/bin/$b" | grep 'not found'; then echo "$b: missing shared libraries" >&2; exit 1; fi
      "/usr/local/bin/$b" --help >/dev/null
    done
    ;;
  *)
    echo "usage: image.sh build cpu|cuda | image.sh check" >&2
    exit 2
    ;;
esac
