#!/usr/bin/env bash
# One-time set-up on a fresh machine: system libraries for napari under Xvfb, then a virtual
# environment in .venv with napari-samed2 and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0
  libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1)

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml .ci/constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  # SAM2_BUILD_CUDA=0: sam2's optional CUDA extension is only used for hole filling.
  SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install -q --upgrade pip
  SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install -q -c .ci/constraints.txt -e ".[testing]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
