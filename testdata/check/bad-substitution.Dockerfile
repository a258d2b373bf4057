FROM scratch
ENV A=${}
