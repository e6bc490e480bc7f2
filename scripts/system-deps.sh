#!/usr/bin/env bash
# The Debian packages the tests use: SoftHSM2 (a real PKCS#11 token), poppler's
# pdfsig/pdftoppm (an independent verifier and page rendering), qpdf, OpenSSL,
# and fonts with full Vietnamese coverage. Installs only what is missing, as root.
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
command -v pdfsig >/dev/null || need+=(poppler-utils)
command -v qpdf >/dev/null || need+=(qpdf)
command -v openssl >/dev/null || need+=(openssl)
[ -f /usr/share/fonts/truetype/croscore/Tinos-Regular.ttf ] || need+=(fonts-croscore)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf ] || need+=(fonts-liberation)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (install them as root; the tests that need them will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
