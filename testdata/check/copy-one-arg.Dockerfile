FROM scratch
COPY app.py
