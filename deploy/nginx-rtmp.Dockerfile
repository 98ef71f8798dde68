# The compose demo's RTMP target: Debian's nginx with the RTMP module, as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-rtmp \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o www-data -g www-data /var/lib/nginx-rtmp
COPY deploy/nginx-rtmp.conf /etc/nginx/nginx-rtmp.conf
USER www-data
EXPOSE 1935 8081
HEALTHCHECK --interval=15s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/1935"]
CMD ["nginx", "-e", "stderr", "-c", "/etc/nginx/nginx-rtmp.conf", "-g", "daemon off;"]
