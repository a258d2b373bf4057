# check=skip=all
FROM scratch AS Bad
CMD echo hi
