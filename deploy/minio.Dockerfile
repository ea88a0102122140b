# MinIO built from source at the version the tests run (scripts/minio/install.ts pins it): the
# community edition has been source-only since October 2025 and its last published images
# predate that month's security fixes.
FROM golang:1.25-bookworm AS build
ARG MINIO_VERSION
RUN test -n "$MINIO_VERSION" && CGO_ENABLED=0 go install "github.com/minio/minio@${MINIO_VERSION}"

FROM debian:bookworm-slim
COPY --from=build /go/bin/minio /usr/local/bin/minio
EXPOSE 9000 9001
ENTRYPOINT ["/usr/local/bin/minio"]
