# syntax=docker/dockerfile:1.7
# escape=\
ARG BASE=alpine:3.20
ARG VERSION
FROM --platform=$BUILDPLATFORM ${BASE} AS build
ARG TARGETOS TARGETARCH
ARG GREETING="hello world"
ENV APP=/app \
    MODE=release
LABEL org.opencontainers.image.title="demo" version="$VERSION"
WORKDIR $APP
USER 1000:1000
COPY --chown=1000:1000 --chmod=0755 --link --exclude=*.md src/ ./src/
COPY --parents ./a/b/c.txt /out/
COPY <<-EOF /etc/motd
	$GREETING from $TARGETARCH
	EOF
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /tmp/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.13.0 /src/buildkit
ADD --unpack=false archive.tar.gz /data/
RUN --mount=type=cache,target=/root/.cache,sharing=locked,id=pip,mode=0755,uid=0,gid=0 \
    --mount=type=bind,from=build,source=/src,target=/mnt/src,rw \
    --mount=type=tmpfs,target=/scratch,size=64m \
    --mount=type=secret,id=token,env=TOKEN,required=true \
    --mount=type=ssh \
    --network=none --security=sandbox \
    make -C /mnt/src
RUN <<EOF bash
set -e
echo "$TARGETOS/$TARGETARCH"
EOF
RUN ["/bin/sh", "-c", "echo exec form"]
SHELL ["/bin/sh", "-ec"]
EXPOSE 8080/tcp 9090/udp
VOLUME /data /logs
VOLUME ["/cache"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --start-interval=1s --retries=3 CMD ["wget", "-q", "-O-", "http://localhost:8080/health"]
ONBUILD COPY --chown=1000:1000 . /app/src
ONBUILD RUN <<EOF
echo triggered
EOF
ENTRYPOINT ["/app/bin/server"]
CMD ["--port", "8080"]

FROM build AS test
HEALTHCHECK NONE
COPY --from=build /app /app
COPY --from=0 /etc/motd /etc/motd
CMD ["/app/bin/test"]
