FROM scratch
COPY --link=yes x /y
