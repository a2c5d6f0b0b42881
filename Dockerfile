# syntax=docker/dockerfile:1
# maas in a container. The first stage builds the addon with the toolchain and compiles the
# TypeScript; the runtime stage holds Node.js, the production dependencies, the compiled package
# and the bundled repository, and runs as the unprivileged `node` user.
#
#   docker build -t maas .
#   docker run -p 8000:8000 -p 8001:8001 -p 8002:8002 -v "$PWD/models:/models" maas
#
# Inside the container the server listens on 0.0.0.0 (set below, explicitly): the container's
# network is the boundary. Give it --tls-cert/--tls-key and --token-file when that network is not
# private (docs/deploy.md).

ARG NODE_VERSION=20.19

FROM node:${NODE_VERSION}-bookworm AS build
RUN apt-get update \
  && apt-get install -y --no-install-recommends cmake g++ make python3 \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# onnxruntime-node (a dev dependency for tests and benches) would fetch a binary on install.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json CMakeLists.txt binding.gyp ./
COPY native ./native
# The dependencies without their install scripts, then the addon itself (package.json's install).
RUN npm ci --ignore-scripts && npx cmake-js compile --out build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
  MAAS_PACKED_CACHE=/home/node/.cache/maas/packed
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/Release/maas.node ./build/Release/maas.node
COPY proto ./proto
COPY ui ./ui
# The bundled repository (what `npm start` serves); mount your own over /models.
COPY --chown=node:node models /models
USER node
EXPOSE 8000 8001 8002
VOLUME ["/models"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/v2/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve", "--host", "0.0.0.0", "--model-repository", "/models"]
