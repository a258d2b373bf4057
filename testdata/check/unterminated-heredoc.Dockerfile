FROM alpine
RUN cat <<EOF
hello
