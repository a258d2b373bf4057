FROM scratch
CMD --init ["a"]
