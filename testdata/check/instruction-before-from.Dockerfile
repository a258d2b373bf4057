RUN echo hi
FROM scratch
