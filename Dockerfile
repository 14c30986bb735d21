# regsweep in a container: a static binary on distroless, run as a non-root user.
#
#   make image                    # regsweep:<version> and regsweep:<version>-kubectl
#   docker run --rm -v /srv/registry:/srv/registry:ro -v $PWD/config.yml:/etc/registry/config.yml:ro \
#     regsweep:latest gc /etc/registry/config.yml --dry-run
#
# The index lives under $HOME/.cache/regsweep (/home/nonroot/.cache in the image):
# mount a volume there, or pass --index, to keep it (and an interrupted sweep's
# journal) between runs.

ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static (no libc), without local paths; the VCS revision comes from .git when it is
# in the build context (regsweep --version prints it).
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=auto -ldflags "-s -w" -o /out/regsweep ./cmd/regsweep \
	&& /out/regsweep --version \
	&& mkdir -p /out/docs && /out/regsweep docs /out/docs

# The tool alone. distroless/static has CA certificates (for S3, GCS and Azure over
# TLS), time zone data (--until 05:00 in TZ) and a nonroot user, and no shell.
FROM gcr.io/distroless/static-debian12:nonroot AS regsweep
COPY --from=build /out/regsweep /usr/local/bin/regsweep
COPY --from=build /out/docs/man /usr/local/share/man/man1
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/regsweep"]
CMD ["--help"]

# With kubectl and a shell, for the Kubernetes CronJob that switches the registry to
# read-only around the run (docs/deploy/cronjob.yaml). Build it with
# --target with-kubectl.
FROM docker.io/bitnami/kubectl:1.31 AS with-kubectl
COPY --from=build /out/regsweep /usr/local/bin/regsweep
USER 1001
ENTRYPOINT []
CMD ["regsweep", "--help"]

# The default target is the tool alone.
FROM regsweep
