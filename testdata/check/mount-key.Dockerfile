FROM alpine
RUN --mount=type=cache,targte=/c true
