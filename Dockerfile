# Multi-stage build of tuneforge on Debian 12: one image with tuneforge-metadata, tuneforge-trainer and the
# tuneforge CLI (CPU libtorch from Debian; a CUDA build swaps in a CUDA libtorch at the build stage).
#   docker build -t tuneforge .
#   docker run -p 50051:50051 -e TUNEFORGE_DATABASE_URL=postgresql://... tuneforge
#   docker run tuneforge tuneforge-trainer --metadata metadata:50051      (see deploy/compose.yaml)
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
COPY tools/package.json tools/package.json
RUN bash scripts/install-deps.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTUNEFORGE_BUILD_TESTS=OFF \
 && cmake --build build --target tuneforge-metadata tuneforge-trainer tuneforge

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libpqxx-6.4 libspdlog1.10 libabsl20220623 libcurl4 libpcre2-8-0 libtorch1.13 \
      ca-certificates postgresql \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/services/metadata/tuneforge-metadata /usr/local/bin/tuneforge-metadata
COPY --from=build /src/build/services/trainer/tuneforge-trainer /usr/local/bin/tuneforge-trainer
COPY --from=build /src/build/services/cli/tuneforge /usr/local/bin/tuneforge
RUN useradd --system --create-home --home-dir /var/lib/tuneforge tuneforge
USER tuneforge
ENV TUNEFORGE_HOME=/var/lib/tuneforge TUNEFORGE_LISTEN=0.0.0.0
EXPOSE 50051
ENTRYPOINT []
CMD ["/usr/local/bin/tuneforge-metadata"]
