#!/usr/bin/env bash
# `npm run setup`: checks, and as root installs, the Debian packages the tests
# need beyond `npm ci`. Plain bash, so it runs before Node 24 is on PATH.
#
#   chromium            /usr/bin/chromium          browser tests (playwright-core drives it)
#   python3-websockets  /usr/bin/python3 -c 'import websockets'   Python reference client
#   coturn              turnserver                 TURN server for the TURN tests
#   prometheus          promtool                   checks the alerting rules
#   golang-go           go                         Go client package (protocol/clients/go)
#   golang-github-pion-webrtc.v3-dev     /usr/share/gocode/src/github.com/pion/webrtc   its pion SFU example
#   golang-github-gorilla-websocket-dev  /usr/share/gocode/src/github.com/gorilla/websocket
#
# As root it runs `apt-get update` and `apt-get install -y` for what is
# missing (through `sudo -n` when passwordless sudo is available). Otherwise,
# or with --check, it prints the exact install command and exits 1.
#
# Exit status: 0 everything present (after installing), 1 something missing,
# 2 usage. The checked paths can be overridden (used by the tests to simulate
# a missing package): SFU_SETUP_CHROMIUM, SFU_SETUP_PYTHON,
# SFU_SETUP_TURNSERVER, SFU_SETUP_PROMTOOL, SFU_SETUP_GO, SFU_SETUP_GOCODE
# (the Debian Go source tree, default /usr/share/gocode).
set -uo pipefail

check_only=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    -h | --help)
      sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup-system: unknown option $arg (options: --check, --help)" >&2
      exit 2
      ;;
  esac
done

CHROMIUM=${SFU_SETUP_CHROMIUM:-/usr/bin/chromium}
PYTHON=${SFU_SETUP_PYTHON:-/usr/bin/python3}
TURNSERVER=${SFU_SETUP_TURNSERVER:-turnserver}
PROMTOOL=${SFU_SETUP_PROMTOOL:-promtool}
GO=${SFU_SETUP_GO:-go}
GOCODE=${SFU_SETUP_GOCODE:-/usr/share/gocode}

# Prints the Debian packages whose check fails, one per line.
missing_packages() {
  [ -x "$CHROMIUM" ] || echo chromium
  "$PYTHON" -c 'import websockets' >/dev/null 2>&1 || echo python3-websockets
  command -v "$TURNSERVER" >/dev/null 2>&1 || echo coturn
  command -v "$PROMTOOL" >/dev/null 2>&1 || echo prometheus
  command -v "$GO" >/dev/null 2>&1 || echo golang-go
  [ -f "$GOCODE/src/github.com/pion/webrtc/go.mod" ] || echo golang-github-pion-webrtc.v3-dev
  [ -f "$GOCODE/src/github.com/gorilla/websocket/go.mod" ] || echo golang-github-gorilla-websocket-dev
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: ok (chromium, python3-websockets, coturn, prometheus, golang-go, pion webrtc v3, gorilla websocket present)"
  exit 0
fi

command_line="apt-get install -y ${missing[*]}"
runner=()
if [ "$check_only" -eq 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    runner=(env)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    runner=(sudo -n env)
  fi
fi

if [ "${#runner[@]}" -eq 0 ]; then
  echo "setup-system: missing Debian packages: ${missing[*]}" >&2
  echo "setup-system: install them as root with:" >&2
  echo "  apt-get update && $command_line" >&2
  exit 1
fi

echo "setup-system: installing ${missing[*]}"
"${runner[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -q || exit 1
"${runner[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" || exit 1

mapfile -t still < <(missing_packages)
if [ "${#still[@]}" -ne 0 ]; then
  echo "setup-system: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
echo "setup-system: ok (installed ${missing[*]})"
