#!/usr/bin/env bash
# Creates .venv with the pinned stack (requirements/base.txt) and installs policy_stack into it.
# Idempotent: a stamp file holding the hash of the requirements + setup.py makes a second run take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need_debs=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib libEGL.so.1      || need_debs+=(libegl1 libegl-mesa0)
have_lib libGL.so.1       || need_debs+=(libgl1 libgl1-mesa-dri)
have_lib libOSMesa.so     || need_debs+=(libosmesa6)
have_lib libusb-1.0.so.0  || need_debs+=(libusb-1.0-0)
if [ ${#need_debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian libraries: ${need_debs[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_debs[@]}") >/dev/null
  else
    echo "[setup] WARNING: missing system libraries (${need_debs[*]})." >&2
    echo "[setup]   MuJoCo rendering needs EGL or OSMesa, pyrealsense2 needs libusb. Install them with:" >&2
    echo "[setup]   sudo apt-get install -y ${need_debs[*]}" >&2
  fi
fi

link_ament_index() {
  local root; root=$(pwd)
  mkdir -p "$VENV/share/ament_index/resource_index/packages" "$VENV/share/policy_stack"
  : > "$VENV/share/ament_index/resource_index/packages/policy_stack"
  for f in package.xml launch config; do ln -sfn "$root/$f" "$VENV/share/policy_stack/$f"; done
  # The ROS wheels never set AMENT_PREFIX_PATH; default it to the venv at interpreter start.
  local site; site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import os, sys; os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)" > "$site/policy_stack_ament.pth"
}

stamp_want=$(cat requirements/base.txt setup.py package.xml | sha256sum | cut -c1-16)
stamp_file="$VENV/.policy_stack_stamp"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_want" ]; then
  link_ament_index
  exit 0
fi
echo "[setup] building $VENV (pinned stack, about 1-2 minutes on first run)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and alone: pins the CPU wheel before anything can pull a CUDA build.
"$VENV/bin/python" -m pip install -q "$(grep '^torch==' requirements/base.txt)"
"$VENV/bin/python" -m pip install -q -r requirements/base.txt
# Editable, so the venv runs the working tree. pip -e skips data_files, so lay the ament index
# entries ourselves (the same layout setup.py's data_files give a non-editable or colcon install).
"$VENV/bin/python" -m pip install -q --no-deps -e .
link_ament_index
echo "$stamp_want" > "$stamp_file"
echo "[setup] done"
