# oci-source-controller image. `make image` builds it into dist/image.tar (see docs/install.md).
# BASE_IMAGE must be Debian-like with node (24) and npm on PATH; where public registries cannot be
# reached, `make image` passes an equivalent one assembled locally (hack/image-base.sh).
ARG BASE_IMAGE=node:24-bookworm-slim

# 1. Dependencies, as the lock file pins them.
FROM ${BASE_IMAGE} AS node-modules
# PEM certificates of a site's TLS-inspecting proxy, if npm must go through one (trusted by this
# stage only; `make image` passes the machine's /usr/local/share/ca-certificates).
ARG EXTRA_CA_CERTS=""
WORKDIR /src
COPY package.json package-lock.json ./
RUN if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" > /tmp/extra-ca.pem; export NODE_EXTRA_CA_CERTS=/tmp/extra-ca.pem; fi; \
    npm ci --no-audit --no-fund --ignore-scripts

# 2. Production dependencies only, without what Node never loads (type declarations, source
#    maps, docs; licence texts stay). Rebuilt only when the lock file changes.
FROM node-modules AS production-modules
RUN npm prune --omit=dev --no-audit --no-fund --ignore-scripts \
 && rm -rf node_modules/@types \
 && find node_modules -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \
      -o \( -iname '*.md' ! -iname 'licen[cs]e*' ! -iname 'notice*' \) \) -delete

# 3. The compiled controller.
FROM node-modules AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json --sourceMap false

# 4. The runtime filesystem: node, the shared libraries it links (as ldd lists them), and a
#    numeric non-root user. No shell, no package manager, no npm.
FROM ${BASE_IMAGE} AS rootfs
RUN set -eu; \
    node=$(command -v node); \
    mkdir -p /rootfs/usr/local/bin /rootfs/etc /rootfs/data; \
    cp "$node" /rootfs/usr/local/bin/node; \
    for lib in $(ldd "$node" | grep -o '/[^ ]*'); do cp -L --parents "$lib" /rootfs/; done; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group; \
    chown 65532:65532 /rootfs/data; chmod 0700 /rootfs/data

# 5. The image.
FROM scratch
COPY --from=rootfs /rootfs/ /
WORKDIR /app
COPY --from=production-modules /src/package.json ./
COPY --from=production-modules /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# Artifacts live in /data (the only place written to: the root filesystem may be read-only).
VOLUME ["/data"]
USER 65532:65532
ENV NODE_ENV=production
EXPOSE 8080 9090
# Memory over speed, measured with bench/scale.ts (1000 cosign-signed objects): semi-spaces of
# 2 MiB (the default 16 MiB gave 175-200 MB with 300 objects), and V8's --optimize-for-size, which
# took the RSS with 1000 objects from 150-157 MB to 118-119 MB and idle from 79 to 76 MB, for
# about a tenth more CPU per steady-state reconcile (2.13-2.27 ms against 1.79-2.04 ms) and a fifth
# fewer cosign verifications a second when the cache misses. A controller's size is set by its
# memory limit; to trade back, override the entrypoint without the flag.
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=2", "--optimize-for-size", "/app/dist/src/main.js"]
CMD ["run"]
# Last, so that a new revision only changes the image config.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="oci-source-controller" \
      org.opencontainers.image.description="Serves OCI artifacts to a Kubernetes cluster only after verifying their Notation or Cosign signatures" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
