FROM scratch
RUN --mount=type=volume,target=/v true
