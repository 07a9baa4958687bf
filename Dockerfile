# A small image of the release binary.
#   docker build -t connperf .
#   docker run --rm --network host connperf serve -l 127.0.0.1:9100
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/connperf /connperf

FROM debian:bookworm-slim
COPY --from=build /connperf /usr/local/bin/connperf
EXPOSE 9100/tcp 9100/udp
ENTRYPOINT ["/usr/local/bin/connperf"]
CMD ["serve"]
