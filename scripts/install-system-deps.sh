#!/usr/bin/env bash
# Installs Debian's ffmpeg and espeak-ng when they are missing and apt-get can be used (root or
# passwordless sudo). Without them storypipe still decodes audio with imageio-ffmpeg's binary.
set -u
missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${missing[*]} not installed and apt-get is not available; storypipe will use imageio-ffmpeg's ffmpeg" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "note: install ${missing[*]} with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "Installing ${missing[*]} with apt-get…"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
} || echo "warning: apt-get could not install ${missing[*]}" >&2
exit 0
