#!/usr/bin/env bash
# Installs Debian's ffmpeg and espeak-ng when they are missing and apt-get can be used (root or
# passwordless sudo). Without them storypipe still decodes audio with imageio-ffmpeg's binary.
# Also installs Debian's chromium (without recommends) for the headless browser tests, which
# Playwright drives at /usr/bin/chromium (Playwright's own browser download can't be used), and
# Pango for the report's PDF.
set -u
missing=()        # installed with apt's recommends, as before
missing_norec=()  # installed with --no-install-recommends
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ -x /usr/bin/chromium ] || missing_norec+=(chromium)
# Pango, for `storypipe report --pdf` (weasyprint); chromium usually brings it already.
ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so.0' || missing_norec+=(libpango-1.0-0 libpangoft2-1.0-0)
all=("${missing[@]}" "${missing_norec[@]}")
[ ${#all[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${all[*]} not installed and apt-get is not available; storypipe will use imageio-ffmpeg's ffmpeg" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "note: install ${all[*]} with: sudo apt-get install ${all[*]}" >&2
  exit 0
fi
echo "Installing ${all[*]} with apt-get…"
export DEBIAN_FRONTEND=noninteractive
updated=0
apt_install() {  # apt_install [apt options…] -- packages…; runs apt-get update once if the first try fails
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  $SUDO apt-get install -y -q "${opts[@]}" "$@" >/dev/null 2>&1 && return 0
  if [ $updated -eq 0 ]; then $SUDO apt-get update -q >/dev/null 2>&1 && updated=1 || return 1; fi
  $SUDO apt-get install -y -q "${opts[@]}" "$@" >/dev/null
}
if [ ${#missing[@]} -gt 0 ]; then
  apt_install -- "${missing[@]}" || echo "warning: apt-get could not install ${missing[*]}" >&2
fi
if [ ${#missing_norec[@]} -gt 0 ]; then
  apt_install --no-install-recommends -- "${missing_norec[@]}" || echo "warning: apt-get could not install ${missing_norec[*]}" >&2
fi
exit 0
