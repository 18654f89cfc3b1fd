# tuneforge images: tuneforge-metadata, tuneforge-trainer and the tuneforge CLI on Debian 12, in two targets:
#
#   docker build -t tuneforge .                        # cpu (the default): the CPU-only torch wheel
#   docker build --target cuda -t tuneforge:cuda .     # cuda: the pinned PyPI torch with its CUDA 13.0 libraries
#   docker run -p 50051:50051 -e TUNEFORGE_DATABASE_URL=postgresql://... tuneforge
#   docker run --gpus all tuneforge:cuda tuneforge-trainer --metadata HOST:50051
#   docker compose -f deploy/compose.yaml --profile gpu up      # PostgreSQL, metadata, CPU and GPU trainers
#
# libtorch comes from the torch pinned in scripts/python-requirements.txt, installed (torch alone) into
# /opt/tuneforge/pyenv by deploy/image.sh, which also builds and stages the binaries for both targets.
#
# The CUDA image is debian:12-slim, not an nvidia/cuda base (those are Ubuntu or RHEL):
#   - the services' libraries are Debian 12's (gRPC 1.51, abseil 20220623, libpqxx 6.4, curl); Ubuntu 24.04 has other
#     versions (libpqxx 7 has another API), so they would have to be copied over with their whole closure;
#   - the CUDA user-space libraries torch needs come with the pinned wheels (nvidia-*), found through torch's own
#     RUNPATH; an nvidia/cuda base would add a second CUDA of another version;
#   - the driver is never in an image: the NVIDIA Container Toolkit mounts the host's into any image that asks for
#     GPUs (docker run --gpus, compose device reservations). The NVIDIA_* variables below are those the nvidia/cuda
#     images set for it; NVIDIA_REQUIRE_CUDA makes the toolkit refuse a driver too old for CUDA 13.0.
# BuildKit builds only the stages a target needs.

ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

# ---- build: the Debian packages CI installs, then the sources CMake reads (not `COPY . .`: a local build/ or
# tools/node_modules must not enter the image).
FROM debian:12 AS build-base
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
COPY tools/package.json tools/package-lock.json tools/
RUN bash scripts/install-deps.sh
# No ccache cache survives between image builds.
ENV CCACHE_DISABLE=1
COPY scripts/python-requirements.txt scripts/python-requirements.txt
COPY deploy/image.sh deploy/image.sh
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY proto proto
COPY services services
COPY bench bench
COPY migrations migrations

FROM build-base AS build-cpu
ARG TORCH_CPU_INDEX
ARG BUILD_JOBS
RUN TORCH_CPU_INDEX="$TORCH_CPU_INDEX" BUILD_JOBS="$BUILD_JOBS" bash deploy/image.sh build cpu

FROM build-base AS build-cuda
ARG BUILD_JOBS
RUN BUILD_JOBS="$BUILD_JOBS" bash deploy/image.sh build cuda

# ---- runtime: Debian 12's shared libraries of gRPC, protobuf, libpqxx, spdlog, abseil, curl, PCRE2 and OpenSSL,
# and PostgreSQL for the metadata service's embedded database.
FROM debian:12-slim AS runtime-base
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libpqxx-6.4 libspdlog1.10 libabsl20220623 libcurl4 libpcre2-8-0 libssl3 libgomp1 \
      ca-certificates postgresql \
 && rm -rf /var/lib/apt/lists/*
# /artifacts and /hf are deploy/compose.yaml's volumes: a new named volume takes the owner of the directory it is
# mounted on, so the services (not root) can write there.
RUN useradd --system --create-home --home-dir /var/lib/tuneforge tuneforge \
 && mkdir -p /artifacts /hf && chown tuneforge:tuneforge /artifacts /hf
COPY deploy/image.sh /usr/local/lib/tuneforge/image.sh
ENV TUNEFORGE_HOME=/var/lib/tuneforge TUNEFORGE_LISTEN=0.0.0.0 TUNEFORGE_TRAINER_LISTEN=0.0.0.0
EXPOSE 50051 50061
ENTRYPOINT []

# ---- the CUDA image. Its trainer also runs on the CPU when no GPU is given to it.
FROM runtime-base AS cuda
COPY --from=build-cuda /stage/ /
RUN bash /usr/local/lib/tuneforge/image.sh check
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility NVIDIA_REQUIRE_CUDA="cuda>=13.0"
USER tuneforge
CMD ["/usr/local/bin/tuneforge-trainer"]

# ---- the CPU image (the default target).
FROM runtime-base AS cpu
COPY --from=build-cpu /stage/ /
RUN bash /usr/local/lib/tuneforge/image.sh check
USER tuneforge
CMD ["/usr/local/bin/tuneforge-metadata"]
