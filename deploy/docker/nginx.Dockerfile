# syntax=docker/dockerfile:1.7
# The frontend: the web page (web/) and the project's nginx config
# (deploy/nginx/nginx.conf, a template) on an unprivileged nginx.
#   docker build -f deploy/docker/nginx.Dockerfile -t dsobel-web:local .
# Settings (the template's variables): DSOBEL_BACKEND (host:port of
# `dsobel serve`, default backend:8080), NGINX_LISTEN (default 8080).
# The config is rendered to /tmp at start, so the root filesystem can be
# read-only with a writable /tmp.

FROM nginxinc/nginx-unprivileged:1.28-alpine

COPY --chmod=0644 deploy/nginx/nginx.conf /etc/dsobel/templates/nginx.conf.template
COPY --chmod=0644 web/ /usr/share/dsobel/web/

# The image's entrypoint renders /etc/dsobel/templates/*.template into
# NGINX_ENVSUBST_OUTPUT_DIR, substituting only the template's own variables.
ENV NGINX_ENVSUBST_TEMPLATE_DIR=/etc/dsobel/templates \
    NGINX_ENVSUBST_OUTPUT_DIR=/tmp \
    NGINX_ENVSUBST_FILTER="^(NGINX_LISTEN|DSOBEL_BACKEND|WEB_ROOT|NGINX_TMP)$" \
    NGINX_LISTEN=8080 \
    DSOBEL_BACKEND=backend:8080 \
    WEB_ROOT=/usr/share/dsobel/web \
    NGINX_TMP=/tmp

USER 101:101
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/bin/sh", "-c", "wget -q -O /dev/null \"http://127.0.0.1:${NGINX_LISTEN##*:}/\" || exit 1"]
CMD ["nginx", "-c", "/tmp/nginx.conf", "-g", "daemon off;"]
