FROM scratch
RUN --mount=type=bind,target=/x,nocache true
