# Multi-stage build of tuneforge-metadata on Debian 12 (the trainer joins this image once it exists).
#   docker build -t tuneforge .
#   docker run -p 50051:50051 -e TUNEFORGE_DATABASE_URL=postgresql://... tuneforge
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
COPY tools/package.json tools/package.json
RUN bash scripts/install-deps.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTUNEFORGE_BUILD_TESTS=OFF \
 && cmake --build build --target tuneforge-metadata

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libpqxx-6.4 libspdlog1.10 libabsl20220623 libcurl4 ca-certificates postgresql \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/services/metadata/tuneforge-metadata /usr/local/bin/tuneforge-metadata
RUN useradd --system --create-home --home-dir /var/lib/tuneforge tuneforge
USER tuneforge
ENV TUNEFORGE_HOME=/var/lib/tuneforge TUNEFORGE_LISTEN=0.0.0.0
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/tuneforge-metadata"]
