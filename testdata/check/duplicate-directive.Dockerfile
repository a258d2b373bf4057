# escape=`
# escape=\
FROM scratch
