FROM scratch
ADD app.tar.gz
