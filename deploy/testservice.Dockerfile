# Image for cmd/testservice, the stand-in for the user's services in e2e
# tests and the demo.
#
# Build context: a directory whose ROOT holds a static `testservice` binary
# built on the host (no registry here; `FROM scratch` pulls nothing):
#
#   CGO_ENABLED=0 GOOS=linux go build -trimpath -o ctx/testservice ./cmd/testservice
#   docker build -f deploy/testservice.Dockerfile -t crank-testservice ctx
#
# There is no shell or curl in the image, so a compose healthcheck is
#   test: ["CMD", "/testservice", "healthcheck"]
# and files are read with `/testservice cat <path>`.
FROM scratch
COPY testservice /testservice
EXPOSE 8080 8443
ENTRYPOINT ["/testservice"]
