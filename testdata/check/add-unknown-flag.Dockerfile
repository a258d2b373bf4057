FROM scratch
ADD --keep-git x /y
