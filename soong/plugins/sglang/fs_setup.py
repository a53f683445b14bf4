"""fs-setup: the script that prepares the persistent file system's folders at boot (root, ``soong-fs.service``).

Templates use ``@NAME@`` placeholders filled by :func:`soong.plugins.sglang.scripts.fill`:
``FS_NAME`` and ``USER`` (the login user), the services' users ``SGLANG_USER`` and
``N8N_USER``, ``WAIT`` (seconds to wait for the mount) and ``SOURCE_ENV_SH`` (``1`` when
``services.source_env_sh`` opts in to sourcing ``secrets/env.sh`` from the file system) and
``LOCAL_DATA``.
Its ``SOONG_*`` variables point it at other folders and users (the tests run it on a
temporary tree).
"""

from __future__ import annotations

#: Where the folders go on local disk when no file system is attached (or its folders are refused).
LOCAL_DATA = "/var/lib/soong-data"
#: The services' folders, relative to the file system (or LOCAL_DATA): each service may write its own only.
HF_CACHE = "soong/hf-cache"
N8N_FOLDER = "soong/n8n"

FS_SETUP_SH = r"""#!/bin/bash
# soong: wait for the persistent file system and prepare its folders. A missing file
# system is logged as a warning (phase=fs-missing) and local disk is used instead;
# this never fails the boot.
#
# It runs as root on a file system anyone with access to it can write, so it never
# follows a symbolic link: each folder is entered with 'cd -P' only after checking
# that it is not a link, and the physical path is compared afterwards (a folder swapped
# for a link in between is refused); ownership is changed with 'chown -h' (-R with
# -h never traverses or follows a link: coreutils chown(1), "-P do not traverse any
# symbolic links (default)"); a mode is set on the folder once entered ('chmod .'),
# never through its name. A planted link is refused and logged (phase=fs-refused).
# The login user's folders (data, projects, the links in their home) are made by the
# login user; the services' folders by root, then given to the service's user.
set -uo pipefail
fs_name=@FS_NAME@
wait_seconds=@WAIT@
user=${SOONG_LOGIN_USER:-@USER@}
sglang_user=${SOONG_SGLANG_USER:-@SGLANG_USER@}
n8n_user=${SOONG_N8N_USER:-@N8N_USER@}
source_env_sh=@SOURCE_ENV_SH@
lib=${SOONG_LIB:-/usr/local/lib/soong}
run_dir=${SOONG_RUN_DIR:-/run/soong}
local_base=${SOONG_LOCAL_DATA:-@LOCAL_DATA@}
base=$local_base
mounted=0

refuse() {
  "$lib/bootlog" fs-refused "warning: $1; soong neither uses it nor changes what it points to"
}

# enter NAME: cd into folder NAME of the current folder, never through a symbolic link.
enter() {
  local here
  here=$(pwd -P) || return 1
  [ ! -L "$1" ] && cd -P -- "$1" 2>/dev/null && [ "$(pwd -P)" = "${here%/}/$1" ]
}

# ensure NAME OWNER MODE HOW: folder NAME of the current folder exists, is no link and belongs
# to OWNER (HOW: as-owner makes it as OWNER, with MODE only when new; recursive gives a folder
# someone else owns, with all it holds, to OWNER; root leaves it to root).
ensure() {
  local name=$1 owner=$2 mode=$3 how=$4 here
  here=$(pwd -P)
  if [ -L "$name" ]; then
    refuse "$here/$name is a symbolic link (to $(readlink -- "$name"))"
    return 1
  fi
  if [ ! -e "$name" ]; then
    if [ "$how" = as-owner ]; then
      runuser -u "$owner" -- mkdir -m "$mode" -- "$name" 2>/dev/null || mkdir -m "$mode" -- "$name"
    else
      mkdir -m "$mode" -- "$name" 2>/dev/null || runuser -u "$user" -- mkdir -m "$mode" -- "$name"
    fi
  fi
  if [ -L "$name" ] || [ ! -d "$name" ]; then
    refuse "$here/$name is not a folder"
    return 1
  fi
  if [ "$(stat -c %U -- "$name")" != "$owner" ]; then
    if [ "$how" = recursive ]; then
      chown -hR -- "$owner:" "$name"
    else
      chown -h -- "$owner:" "$name"
    fi || "$lib/bootlog" fs-refused "warning: could not give $here/$name to $owner"
  fi
  # The services' folders get their mode on every boot; the login user's keep the one they chose.
  # chmod follows links, so the mode is set on the folder entered ('.'), never through its name.
  if [ "$how" != as-owner ] && ! (enter "$name" && chmod "$mode" .); then
    "$lib/bootlog" fs-refused "warning: could not set mode $mode on $here/$name"
  fi
  return 0
}

# prepare BASE: the services' folders under BASE; status 1 when one of them is refused or
# its user cannot write it. Prints the login user's folders it made, one a line.
prepare() (
  cd -P -- "$1" || exit 1
  ensure soong root 0755 root || exit 1
  enter soong || { refuse "$1/soong changed while it was being entered"; exit 1; }
  ensure hf-cache "$sglang_user" 0750 recursive || exit 1
  ensure n8n "$n8n_user" 0700 recursive || exit 1
  for pair in "hf-cache:$sglang_user" "n8n:$n8n_user"; do
    folder="$(pwd -P)/${pair%%:*}"
    if ! runuser -u "${pair#*:}" -- test -w "$folder" || ! runuser -u "${pair#*:}" -- test -x "$folder"; then
      "$lib/bootlog" fs-refused "warning: ${pair#*:} cannot write $folder"
      exit 1
    fi
  done
  cd .. || exit 1
  for name in data projects; do
    if ensure "$name" "$user" 0755 as-owner; then
      echo "$name"
    fi
  done
)

if [ -z "$fs_name" ]; then
  "$lib/bootlog" fs-missing "no persistent file system attached; using local disk $local_base"
else
  mnt="${SOONG_NFS_ROOT:-/lambda/nfs}/$fs_name"
  deadline=$(( $(date +%s) + wait_seconds ))
  until mountpoint -q "$mnt"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      break
    fi
    sleep "${SOONG_WAIT_INTERVAL:-5}"
  done
  if mountpoint -q "$mnt"; then
    base=$mnt
    mounted=1
    "$lib/bootlog" fs-mounted "$mnt"
  else
    "$lib/bootlog" fs-missing "warning: $mnt is not mounted after ${wait_seconds}s; using local disk $local_base (nothing will persist)"
  fi
fi
if [ "$mounted" = 1 ] && ! made=$(prepare "$base"); then
  "$lib/bootlog" fs-missing "warning: the file system's folders cannot be used (see fs-refused); using local disk $local_base (nothing will persist)"
  base=$local_base
  mounted=0
fi
if [ "$mounted" = 0 ]; then
  mkdir -p -- "$local_base"
  made=$(prepare "$local_base") || "$lib/bootlog" fs-refused "warning: the folders under $local_base cannot be used either"
fi
home=${SOONG_USER_HOME:-$(getent passwd "$user" | cut -d: -f6)}
if [ -n "$home" ] && [ -d "$home" ] && [ ! -L "$home" ]; then
  for name in $made; do
    link="$home/$name"
    if [ -L "$link" ] || [ ! -e "$link" ]; then
      runuser -u "$user" -- ln -sfn -- "$base/$name" "$link" ||
        "$lib/bootlog" fs-refused "warning: could not link $link to $base/$name"
    fi
  done
fi
mkdir -p "$run_dir"
cat > "$run_dir/paths.env.tmp" <<EOF
SOONG_FS=$base
SOONG_FS_MOUNTED=$mounted
SOONG_SOURCE_ENV_SH=$source_env_sh
HF_HOME=$base/soong/hf-cache
N8N_USER_FOLDER=$base/soong/n8n
EOF
mv "$run_dir/paths.env.tmp" "$run_dir/paths.env"
exit 0
"""
