FROM scratch
HEALTHCHECK --interval=5s CMD
