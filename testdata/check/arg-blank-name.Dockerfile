FROM scratch
ARG =1
