#!/bin/sh
# Install anfang-gateway as a systemd service. Run once, as root, from a
# checkout of the repository:
#
#     sudo ./systemd/install.sh
#
# What it does (each step is skipped when already done, so running it again
# upgrades in place and changes nothing else):
#   - on a Raspberry Pi: apt packages for the camera and GPIO (python3-picamera2,
#     python3-lgpio) and a venv that can see them (--system-site-packages)
#   - the venv /opt/anfang/venv, and `pip install` of this checkout into it
#     (with the `pi` extra on a Raspberry Pi), /usr/local/bin/anfang linked to it
#   - the user and groups (sysusers.d), /etc/anfang and /var/lib/anfang
#     (tmpfiles.d), the unit /etc/systemd/system/anfang.service
#   - /etc/anfang/gateway.toml from examples/gateway.toml, only if absent
#     (mode 0640, root:anfang)
#   - systemctl daemon-reload; it does not enable or start the service: edit the
#     config first (the next steps are printed at the end).
#
# Options:
#   --dry-run       print what would be done, change nothing
#   --prefix DIR    install under DIR instead of / (for tests and image builds):
#                   no apt, no systemctl, sysusers/tmpfiles run with --root=DIR
#   --source DIR    the checkout to install (default: this script's repository)
#   --pi, --no-pi   force or refuse the Raspberry Pi set-up (default: detected
#                   from /proc/device-tree/model)
#   --skip-pip      create the venv but do not pip install (tests, offline reruns)
#   --python EXE    the Python (>= 3.11) to build the venv from (default python3)
set -eu

DRY_RUN=0
PREFIX=""
SOURCE=""
PI=auto
SKIP_PIP=0
PYTHON=python3

usage() { sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift ;;
        --prefix=*) PREFIX=${1#--prefix=} ;;
        --source) [ $# -ge 2 ] || die "--source needs a directory"; SOURCE=$2; shift ;;
        --source=*) SOURCE=${1#--source=} ;;
        --pi) PI=yes ;;
        --no-pi) PI=no ;;
        --skip-pip) SKIP_PIP=1 ;;
        --python) [ $# -ge 2 ] || die "--python needs an executable"; PYTHON=$2; shift ;;
        --python=*) PYTHON=${1#--python=} ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

if [ -n "$PREFIX" ]; then
    case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
    PREFIX=${PREFIX%/}
    [ "$PREFIX" != "" ] || die "--prefix / is the real system: leave --prefix out"
fi
if [ -z "$SOURCE" ]; then
    SOURCE=$(cd "$(dirname "$0")/.." && pwd)
fi
[ -f "$SOURCE/pyproject.toml" ] && [ -f "$SOURCE/systemd/anfang.service" ] \
    || die "$SOURCE is not an anfang-gateway checkout (no pyproject.toml / systemd/anfang.service)"
if [ -z "$PREFIX" ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0), or try --dry-run"
fi

# --- Paths (the unit's ExecStart names the venv: keep them in step) --------------
VENV=/opt/anfang/venv
UNIT=/etc/systemd/system/anfang.service
SYSUSERS=/etc/sysusers.d/anfang.conf
TMPFILES=/etc/tmpfiles.d/anfang.conf
CONFIG=/etc/anfang/gateway.toml
EXAMPLE="$SOURCE/examples/gateway.toml"
LINK=/usr/local/bin/anfang

say() { echo "==> $*"; }
# run CMD...: print it; execute it unless --dry-run
run() {
    echo "+ $*"
    [ "$DRY_RUN" = 1 ] || "$@"
}

# --- Raspberry Pi? --------------------------------------------------------------
if [ "$PI" = auto ]; then
    PI=no
    if [ -r /proc/device-tree/model ] && tr -d '\0' < /proc/device-tree/model | grep -q "Raspberry Pi"; then
        PI=yes
    fi
fi
MODEL=$( (tr -d '\0' < /proc/device-tree/model) 2>/dev/null || echo "not a Raspberry Pi")
say "machine: $MODEL; Raspberry Pi set-up: $PI; installing into ${PREFIX:-/}"

# --- System packages (real installs only) -------------------------------------------
if [ -z "$PREFIX" ] && command -v apt-get >/dev/null 2>&1; then
    want="python3-venv"
    if [ "$PI" = yes ]; then
        want="$want python3-picamera2 python3-lgpio"
    fi
    missing=""
    for p in $want; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        say "apt packages:$missing"
        run apt-get install -y --no-install-recommends $missing
    fi
fi

# --- Python and the venv ----------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1): anfang-gateway needs Python 3.11 or newer"

if [ -x "$PREFIX$VENV/bin/python" ]; then
    say "venv $PREFIX$VENV exists: reusing it"
    if [ "$PI" = yes ] && ! grep -q "include-system-site-packages = true" "$PREFIX$VENV/pyvenv.cfg"; then
        echo "warning: $VENV cannot see apt's picamera2/libcamera; remove it and run this again" >&2
    fi
else
    say "creating venv $PREFIX$VENV"
    run mkdir -p "$PREFIX/opt/anfang"
    if [ "$PI" = yes ]; then
        # picamera2 needs apt's libcamera bindings, which pip cannot install
        run "$PYTHON" -m venv --system-site-packages "$PREFIX$VENV"
    else
        run "$PYTHON" -m venv "$PREFIX$VENV"
    fi
fi

if [ "$SKIP_PIP" = 1 ]; then
    say "skipping pip install (--skip-pip)"
else
    # Build from a copy: a build as root must not leave root-owned build/ and
    # egg-info directories in the technician's checkout.
    if [ "$DRY_RUN" = 1 ]; then
        BUILD=/tmp/anfang-build.XXXXXX
    else
        BUILD=$(mktemp -d /tmp/anfang-build.XXXXXX)
        trap 'rm -rf "$BUILD"' EXIT
    fi
    say "copying $SOURCE to $BUILD to build it"
    echo "+ tar -C $SOURCE -cf - . | tar -C $BUILD -xf -  (without .git, .venv, build)"
    if [ "$DRY_RUN" = 0 ]; then
        tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./build \
            --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$BUILD" -xf -
    fi
    spec="$BUILD"
    what="anfang-gateway"
    if [ "$PI" = yes ]; then
        spec="$BUILD[pi]"
        what="anfang-gateway with the pi extra"
    fi
    say "installing $what into the venv"
    run "$PREFIX$VENV/bin/python" -m pip install --upgrade "$spec"
fi
for doc in README.md; do
    if [ -f "$SOURCE/$doc" ]; then
        run install -D -m 0644 "$SOURCE/$doc" "$PREFIX/opt/anfang/$doc"
    fi
done
run mkdir -p "$PREFIX$(dirname "$LINK")"
run ln -sfn "$VENV/bin/anfang" "$PREFIX$LINK"

# --- User, directories, unit --------------------------------------------------------
say "user anfang (sysusers.d), directories (tmpfiles.d), unit"
run install -D -m 0644 "$SOURCE/systemd/anfang.sysusers" "$PREFIX$SYSUSERS"
run install -D -m 0644 "$SOURCE/systemd/anfang.tmpfiles" "$PREFIX$TMPFILES"
run install -D -m 0644 "$SOURCE/systemd/anfang.service" "$PREFIX$UNIT"
if [ -n "$PREFIX" ]; then
    run mkdir -p "$PREFIX/etc"
    if command -v systemd-sysusers >/dev/null 2>&1; then
        run systemd-sysusers --root="$PREFIX" "$PREFIX$SYSUSERS"
        run systemd-tmpfiles --root="$PREFIX" --create "$PREFIX$TMPFILES"
    else
        echo "warning: no systemd-sysusers here: user anfang not created under $PREFIX" >&2
    fi
else
    command -v systemd-sysusers >/dev/null 2>&1 || die "systemd-sysusers not found: this needs a systemd system"
    run systemd-sysusers "$SYSUSERS"
    run systemd-tmpfiles --create "$TMPFILES"
fi

# --- Config -----------------------------------------------------------------------
if [ -e "$PREFIX$CONFIG" ]; then
    say "$CONFIG exists: kept as it is"
else
    [ -f "$EXAMPLE" ] || die "no example config at $EXAMPLE"
    say "$CONFIG from examples/gateway.toml (edit it before starting)"
    # the group as the target system knows it (under --prefix: its own /etc/group)
    gid=$(awk -F: '$1 == "anfang" { print $3 }' "$PREFIX/etc/group" 2>/dev/null || true)
    if [ "$DRY_RUN" = 1 ] && [ -z "$gid" ]; then
        gid=anfang
    fi
    [ -n "$gid" ] || die "group anfang does not exist in $PREFIX/etc/group (sysusers failed?)"
    if [ "$(id -u)" = 0 ]; then
        run install -D -m 0640 -o 0 -g "$gid" "$EXAMPLE" "$PREFIX$CONFIG"
    else
        echo "warning: not root: $CONFIG left owned by $(id -un)" >&2
        run install -D -m 0640 "$EXAMPLE" "$PREFIX$CONFIG"
    fi
fi

# --- systemd ----------------------------------------------------------------------
RUNNING=0
if [ -n "$PREFIX" ]; then
    say "--prefix: not calling systemctl"
elif [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
    if systemctl is-active --quiet anfang.service; then
        RUNNING=1
    fi
else
    say "systemd is not running here (chroot or container): not calling systemctl"
fi

if [ "$DRY_RUN" = 1 ]; then
    headline="Dry run: nothing was changed. After a real run, the next steps are:"
else
    headline="anfang-gateway is installed. Next steps:"
fi
cat <<EOF

$headline
  1. Edit $CONFIG: [gateway] site and id, [mqtt] url of the platform's
     broker, and your devices (examples: $SOURCE/examples/).
  2. Secrets go in their own files, readable by the gateway alone, e.g.
       install -m 0600 -o anfang -g anfang /dev/stdin /etc/anfang/mqtt-password
     and password_file = "/etc/anfang/mqtt-password" in [mqtt].
  3. Check the config as the service will read it:
       sudo -u anfang $VENV/bin/anfang check-config $CONFIG
  4. Start it now and at every boot, and watch it:
       systemctl enable --now anfang
       systemctl status anfang        (the Status: line tells how it is doing)
       journalctl -u anfang -f
EOF
if [ "$RUNNING" = 1 ]; then
    echo "  anfang is running the old version: systemctl restart anfang"
fi
