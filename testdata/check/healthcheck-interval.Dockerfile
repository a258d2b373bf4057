FROM scratch
HEALTHCHECK --interval=50us CMD true
