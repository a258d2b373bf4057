FROM scratch
ONBUILD RUNN true
