# syntax=docker/dockerfile:1.4
FROM --platform=$BUILDPLATFORM python:3.10-alpine AS base
ARG TARGETARCH
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1
COPY <<EOF /app/hello.py
print("hello from $TARGETARCH")
EOF
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=token,required \
    --network=host \
    pip3 install requests
HEALTHCHECK --interval=30s --timeout=3s CMD ["python3", "-c", "print(1)"]
CMD ["python3", "/app/hello.py"]
