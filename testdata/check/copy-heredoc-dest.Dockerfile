FROM scratch
COPY app.py <<EOF
body
EOF
