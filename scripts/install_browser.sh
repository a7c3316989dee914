#!/usr/bin/env bash
# A headless Chromium for the end-to-end browser test, from Debian's packages (nothing downloads a
# browser build of its own). Prints the binary's path; exits non-zero when none can be had.
# LLDMIX_BROWSER, when set, must name an executable: it is used as is, never replaced by another.
set -euo pipefail
if [ -n "${LLDMIX_BROWSER:-}" ]; then
  if [ -x "$LLDMIX_BROWSER" ]; then echo "$LLDMIX_BROWSER"; exit 0; fi
  echo "install_browser: LLDMIX_BROWSER=$LLDMIX_BROWSER is not an executable file" >&2
  exit 1
fi
CANDIDATES=(/usr/bin/chromium-headless-shell /usr/lib/chromium/chromium-headless-shell /usr/bin/chromium)
for b in "${CANDIDATES[@]}"; do
  if [ -x "$b" ]; then echo "$b"; exit 0; fi
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || echo "install_browser: apt-get update failed" >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium-headless-shell >&2 \
  || $SUDO apt-get install -y -qq --no-install-recommends chromium >&2 || true
for b in "${CANDIDATES[@]}"; do
  if [ -x "$b" ]; then echo "$b"; exit 0; fi
done
echo "install_browser: no headless Chromium could be installed" >&2
exit 1
