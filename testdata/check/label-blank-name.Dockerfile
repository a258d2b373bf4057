FROM scratch
LABEL =x
