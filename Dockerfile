# Builds the cta-stream binaries (simulation, worker, cta) for the docker-compose stack.
FROM rust:1.88-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev libclang-dev clang libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/simulation /src/target/release/worker /src/target/release/cta /usr/local/bin/
ENV RUST_LOG=info
