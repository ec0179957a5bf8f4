# clerk-forward-auth: a static binary on distroless/static, non-root, about 12 MB.
#   docker build -t clerk-forward-auth .
#   docker run --rm -p 8080:8080 -e CLERK_PUBLISHABLE_KEY=pk_live_… -e CLERK_SECRET_KEY=sk_live_… clerk-forward-auth
# CI has no Docker engine: it runs scripts/build-release (the build below) and
# scripts/check-image (the binary alone in an empty root, as this image runs it).

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# aws-lc-sys builds its C with cmake when it is there, and with cc otherwise. wrk drives the
# training run of the profile-guided build.
RUN apt-get update && apt-get install -y --no-install-recommends cmake wrk && rm -rf /var/lib/apt/lists/* \
    && rustup component add llvm-tools
COPY . .
RUN bash scripts/build-release > /binary-path && cp "$(cat /binary-path)" /clerk-forward-auth

# distroless/static: CA certificates, /etc/passwd with `nonroot` (65532), no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /clerk-forward-auth /clerk-forward-auth
USER 65532:65532
# Inside a container the service must listen beyond loopback; metrics can move to their own
# port with CLERK_FA_METRICS_LISTEN (the Kubernetes base does).
# The two MIMALLOC_ settings make the allocator commit arena memory only as it is used and
# return freed pages at once: 9 MiB idle and 48 MiB with 100,000 sessions instead of its
# defaults' 19 and 61, at the same speed (README, Performance).
ENV CLERK_FA_LISTEN=0.0.0.0:8080 \
    CLERK_FA_LOG_FORMAT=json \
    MIMALLOC_ARENA_EAGER_COMMIT=0 \
    MIMALLOC_PURGE_DELAY=0
EXPOSE 8080
ENTRYPOINT ["/clerk-forward-auth"]
CMD ["serve"]
