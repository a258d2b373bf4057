FROM alpine AS build
COPY --form=build a b
