FROM scratch
COPY --chown x /y
