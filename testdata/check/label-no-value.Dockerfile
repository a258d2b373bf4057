FROM scratch
LABEL version
