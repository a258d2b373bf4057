FROM scratch
HEALTHCHECK --retries=-2 CMD true
