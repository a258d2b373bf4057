from scratch
RUN true
run true
copy a b
