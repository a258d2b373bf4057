FROM scratch
HEALTHCHECK --timeout=10 CMD true
