FROM scratch
ARG TAG
LABEL tag="${TAG:?set TAG with --build-arg}"
