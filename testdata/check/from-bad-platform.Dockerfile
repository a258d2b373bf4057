FROM --platform=linux/nope/x/y scratch
