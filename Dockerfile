# syntax=docker/dockerfile:1
# Build a static kubemedic binary, ship it on a scratch image as non-root.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p kubemedic \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/kubemedic /out/kubemedic \
 && mkdir -p /out/etc/kubemedic /out/var/lib/kubemedic \
 && cp -r rules prompts /out/etc/kubemedic/

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/kubemedic /usr/local/bin/kubemedic
COPY --from=build --chown=65532:65532 /out/etc/kubemedic /etc/kubemedic
COPY --from=build --chown=65532:65532 /out/var/lib/kubemedic /var/lib/kubemedic
USER 65532:65532
WORKDIR /var/lib/kubemedic
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubemedic"]
CMD ["run", "--config", "/etc/kubemedic/config.yaml"]
