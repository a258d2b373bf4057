# check=skip=JSONArgsRecommended;bogus=1
FROM scratch
