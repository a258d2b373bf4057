FROM scratch
RUN --mount=type=cache,target=/c,sharing=lockd true
