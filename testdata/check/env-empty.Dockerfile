FROM scratch
ENV
