FROM scratch
COPY --from=a --from=b x /y
