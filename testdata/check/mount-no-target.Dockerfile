FROM scratch
RUN --mount=type=cache true
