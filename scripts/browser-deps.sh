#!/usr/bin/env bash
# The status page's browser test (tests/integration/daemon/browser.rs) drives Debian's headless
# chromium through chromedriver. Installs both when missing, from Debian's archive like
# deploy/check.sh installs promtool: no browser is downloaded from anywhere else.
set -euo pipefail
if [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null; then
  exit 0
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
chromium --version
chromedriver --version
