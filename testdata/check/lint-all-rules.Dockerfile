# check=skip=ConsistentInstructionCasing
ARG API_KEY
FROM ${MISSING:-alpine} AS Base
FROM --platform=linux/amd64 scratch as base
FROM --platform=$TARGETPLATFORM scratch AS scratch
MAINTAINER someone
ENV PASSWORD=x
LABEL a b
WORKDIR app
RUN echo \

    more
ENV X=$NOTSET
CMD echo a
CMD echo b
ENTRYPOINT run
