FROM scratch
RUN --mount=type=secret,id=s,from=base true
