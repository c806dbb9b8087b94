#!/usr/bin/env bash
# Install the system packages the service needs (ffmpeg/ffprobe) when they are missing.
# As root on Debian/Ubuntu this runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} with apt-get..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "Missing: ${missing[*]}. Install with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
