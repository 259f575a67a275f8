#!/bin/sh
# Render nginx.conf (a template, see its header) to the file named as the first argument, or to
# standard output. Unset variables take the container defaults.
#   NGINX_LISTEN=127.0.0.1:18080 DSOBEL_BACKEND=127.0.0.1:8080 WEB_ROOT="$PWD/web" NGINX_TMP=/tmp \
#       deploy/nginx/render.sh /tmp/nginx.conf
set -eu
: "${NGINX_LISTEN:=8080}"
: "${DSOBEL_BACKEND:=backend:8080}"
: "${WEB_ROOT:=/usr/share/nginx/html}"
: "${NGINX_TMP:=/tmp}"
export NGINX_LISTEN DSOBEL_BACKEND WEB_ROOT NGINX_TMP
template="$(dirname "$0")/nginx.conf"
if [ "$#" -gt 0 ]; then
    envsubst '${NGINX_LISTEN} ${DSOBEL_BACKEND} ${WEB_ROOT} ${NGINX_TMP}' < "$template" > "$1"
else
    envsubst '${NGINX_LISTEN} ${DSOBEL_BACKEND} ${WEB_ROOT} ${NGINX_TMP}' < "$template"
fi
