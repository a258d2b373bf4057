# check=error=true
FROM scratch AS Build
CMD echo hi
