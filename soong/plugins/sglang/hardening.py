"""What keeps the daemon's secrets from the instance's other users: cloud-init's copies and the metadata endpoint.

Two ``bootcmd`` entries, in one cloud-config part that comes right after the daemon's
(whose ``bootcmd`` creates the system users). cloud-init runs ``bootcmd`` on every boot,
in its init stage (the ``cloud_init_modules`` list, before ``write_files``), so both run
before any service of the bootstrap starts, on the first boot and after a reboot:

* :data:`USERDATA_PRIVATE_SH` keeps every copy cloud-init stores of the user data
  root-only (see its comments for which files hold it and their modes, from cloud-init's
  source), and creates ``/etc/soong-daemon`` as a 0700 folder of the daemon's user before
  ``write_files`` puts the key files in it;
* :data:`METADATA_FIREWALL_SH` closes the instance metadata endpoint (169.254.169.254 and
  the IPv6 addresses clouds use for it) to every user but root and the daemon's, with an
  owner-matched rule in the OUTPUT hook (nftables where the image has ``nft``, iptables
  and ip6tables otherwise). A rule that cannot be installed is logged
  loudly (``phase=metadata-open``) and the boot goes on.

Both write their boot-log line themselves: on the first boot ``bootcmd`` runs before
``write_files`` has installed ``/usr/local/lib/soong/bootlog``.
"""

from __future__ import annotations

from soong.core.bootstrap import DAEMON_CONFIG_PATH, DAEMON_USER, LaunchPlan, UserDataPart

#: Where cloud-init and other clouds' datasources find instance metadata (and the user data): the
#: IPv4 link-local address of the EC2-style and OpenStack metadata services cloud-init reads
#: (cloudinit/sources/DataSourceEc2.py and DataSourceOpenStack.py, ``metadata_urls``). Lambda's API
#: reference (OpenAPI 1.8.3, tests/data/lambda-cloud-api) says nothing of a metadata service or of how
#: the user data reaches the instance, and no Lambda document found says so either; soong closes this
#: address to every user but root and the daemon's whether or not anything answers there.
METADATA_ADDRESS = "169.254.169.254"
#: The same services' IPv6 addresses: EC2's (``metadata_urls`` in DataSourceEc2.py) and OpenStack's
#: link-local one (``DEF_MD_URLS`` in DataSourceOpenStack.py), cloud-init 24.1.3.
METADATA_ADDRESSES6 = ("fd00:ec2::254", "fe80::a9fe:a9fe")

_LOG_FUNCTION = r"""log() {
  if [ ! -e "$boot_log" ]; then install -m 0644 /dev/null "$boot_log"; fi
  printf '%s phase=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" >> "$boot_log"
  echo "soong: $2" >&2
}
"""

#: Which copies of the user data cloud-init keeps, and their modes, as written by cloud-init
#: 22.4.2 (Debian 12, the boot rehearsal's), 24.1.3 (Ubuntu 24.04's release) and
#: 26.1-0ubuntu1~24.04.1 (its current update), all alike:
#:
#: * ``instances/<id>/user-data.txt`` (the raw document) and ``user-data.txt.i`` (processed):
#:   ``util.write_file(..., 0o600)`` in ``Init._store_rawdata`` / ``_store_processeddata``
#:   (cloudinit/stages.py);
#: * ``instances/<id>/cloud-config.txt`` (the merged cloud-config, secrets included): 0o600,
#:   cloudinit/handlers/cloud_config.py; ``scripts/part-*`` (the shell parts): 0o700,
#:   cloudinit/handlers/shell_script.py; custom part handlers: 0o600, cloudinit/handlers/__init__.py;
#: * ``instances/<id>/obj.pkl`` (the datasource, raw user data included): 0o400, ``pkl_store``
#:   in cloudinit/sources/__init__.py;
#: * ``/run/cloud-init/combined-cloud-config.json`` (24.1 and later) and
#:   ``instance-data-sensitive.json``: 0o600 (cloudinit/stages.py, cloudinit/sources/__init__.py;
#:   the world-readable ``instance-data.json`` has the user data popped out);
#: * ``/var/log/cloud-init-output.log``: written by ``tee -a`` under umask 037 with group adm
#:   (``redirect_output`` in cloudinit/util.py), so 0640 root:adm; ``cloud-init.log`` 0640
#:   (``Init._initialize_filesystem``). Neither holds the user data: soong's parts never print a
#:   secret, and cloud-init logs only paths and sizes of what ``write_files`` writes.
#:
#: The folders holding them are made with the process umask (0755). This script makes
#: ``instances/`` and ``seed/`` (where a NoCloud seed keeps its own copy) 0700, so no other user
#: reaches any file below them, whatever mode a file written later gets, takes group and other
#: bits off everything already there and off the run-time copies, and takes other users' bits off
#: the two logs. cloud-init writes each file before it sets its mode (``util.write_file``), so
#: ``/etc/soong-daemon`` is made a 0700 folder of the daemon's user here, before ``write_files``
#: writes the key files into it (cloud-init's ``ensure_dir`` leaves an existing folder's mode alone).
USERDATA_PRIVATE_SH = r"""# soong: keep cloud-init's copies of the user data root-only (they hold the daemon's secrets).
cloud=${SOONG_CLOUD_DIR:-/var/lib/cloud}
run=${SOONG_CLOUD_RUN_DIR:-/run/cloud-init}
logs=${SOONG_LOG_DIR:-/var/log}
boot_log=${SOONG_BOOT_LOG:-/var/log/soong-boot.log}
secrets=${SOONG_DAEMON_SECRETS_DIR:-@SECRETS_DIR@}
daemon_user=${SOONG_DAEMON_USER:-@DAEMON_USER@}
@LOG_FUNCTION@closed=""
for dir in "$cloud/instances" "$cloud/seed"; do
  if [ -d "$dir" ] && [ ! -L "$dir" ]; then
    chmod 0700 "$dir" && find "$dir" -mindepth 1 ! -type l -exec chmod go-rwx {} + && closed="$closed $dir"
  fi
done
for file in "$run/combined-cloud-config.json" "$run/instance-data-sensitive.json"; do
  if [ -f "$file" ] && [ ! -L "$file" ]; then chmod go-rwx "$file"; fi
done
for file in "$logs/cloud-init.log" "$logs/cloud-init-output.log"; do
  if [ -f "$file" ] && [ ! -L "$file" ]; then chmod o-rwx "$file"; fi
done
if [ ! -L "$secrets" ] && getent passwd "$daemon_user" >/dev/null; then
  install -d -m 0700 -o "$daemon_user" -g "$daemon_user" "$secrets"
fi
if [ -n "$closed" ]; then
  log userdata-private "cloud-init's copies of the user data are root-only (0700:$closed)"
else
  log userdata-private "warning: no cloud-init folder under $cloud to close"
fi
exit 0
"""

#: The firewall rule. nftables (nft(8), nftables 1.0.6 in Debian 12, 1.0.9 in Ubuntu 24.04):
#: ``meta skuid`` matches the user id of the socket a locally generated packet comes from; a
#: packet with no socket does not match, so it is rejected too. A table of its own, declared,
#: deleted and declared again in one ``nft -f`` transaction, so that running it twice replaces the
#: rule rather than adding a second. iptables (iptables-extensions(8), iptables 1.8.9 / 1.8.10):
#: the ``owner`` match (``--uid-owner``) is valid in the OUTPUT chain; a chain of its own, flushed
#: and filled again, jumped to from OUTPUT for the metadata address only. Rejecting (a TCP reset,
#: else ICMP port unreachable) rather than dropping makes a client fail at once, not time out.
#: IPv6: the same for :data:`METADATA_ADDRESSES6` (in the same nft table; with ip6tables, where an IPv6
#: failure is noted in the log line and IPv4 stays closed).
#: Where the rule cannot go in (no tool; in a container without CAP_NET_ADMIN, as the boot
#: rehearsal's machine is), the boot logs ``phase=metadata-open`` with the reason and goes on.
METADATA_FIREWALL_SH = r"""# soong: close the instance metadata endpoint to every user but root and the daemon's.
address=${SOONG_METADATA_ADDRESS:-@ADDRESS@}
addresses6=${SOONG_METADATA_ADDRESSES6:-@ADDRESSES6@}
tool=${SOONG_FIREWALL_TOOL:-}
boot_log=${SOONG_BOOT_LOG:-/var/log/soong-boot.log}
daemon_user=${SOONG_DAEMON_USER:-@DAEMON_USER@}
@LOG_FUNCTION@open_warning() {
  log metadata-open "warning: $1; every user on this instance can reach $address (the instance metadata service)"
  exit 0
}
# xtables TOOL ADDRESS...: a SOONG_METADATA chain for TOOL (iptables, ip6tables), jumped to from OUTPUT for each ADDRESS.
xtables() {
  x=$1
  shift
  { "$x" -w -N SOONG_METADATA 2>/dev/null || "$x" -w -F SOONG_METADATA; } &&
    "$x" -w -A SOONG_METADATA -m owner --uid-owner 0 -j RETURN &&
    "$x" -w -A SOONG_METADATA -m owner --uid-owner "$uid" -j RETURN &&
    "$x" -w -A SOONG_METADATA -p tcp -j REJECT --reject-with tcp-reset &&
    "$x" -w -A SOONG_METADATA -j REJECT || return 1
  for target in "$@"; do
    "$x" -w -C OUTPUT -d "$target" -j SOONG_METADATA 2>/dev/null ||
      "$x" -w -I OUTPUT 1 -d "$target" -j SOONG_METADATA || return 1
  done
}
uid=$(id -u "$daemon_user" 2>/dev/null) || open_warning "no user $daemon_user to allow"
if [ -z "$tool" ]; then
  if command -v nft >/dev/null 2>&1; then tool=nft; elif command -v iptables >/dev/null 2>&1; then tool=iptables; fi
fi
also=""
case "$tool" in
  nft)
    set6=$(echo "$addresses6" | tr ' ' ',')
    if ! error=$(nft -f - 2>&1 <<EOF
table inet soong_metadata
delete table inet soong_metadata
table inet soong_metadata {
  chain output {
    type filter hook output priority filter; policy accept;
    ip daddr $address meta skuid { 0, $uid } accept
    ip6 daddr { $set6 } meta skuid { 0, $uid } accept
    ip daddr $address meta l4proto tcp reject with tcp reset
    ip6 daddr { $set6 } meta l4proto tcp reject with tcp reset
    ip daddr $address reject
    ip6 daddr { $set6 } reject
  }
}
EOF
) || ! nft list table inet soong_metadata >/dev/null 2>&1; then
      open_warning "nft could not install the rule: $(echo "$error" | head -c 300)"
    fi
    also=" and $addresses6"
    ;;
  iptables)
    if ! error=$(xtables iptables "$address" 2>&1); then
      open_warning "iptables could not install the rule: $(echo "$error" | head -c 300)"
    fi
    # shellcheck disable=SC2086
    if error=$(xtables ip6tables $addresses6 2>&1); then
      also=" and $addresses6"
    else
      also=" (not $addresses6: $(echo "$error" | head -c 200))"
    fi
    ;;
  *)
    open_warning "no firewall tool: neither nft nor iptables is installed${tool:+ (asked for $tool)}"
    ;;
esac
log metadata-closed "$address$also closed to every user but root and $daemon_user ($tool, owner match)"
exit 0
"""


def userdata_private_script() -> str:
    """The ``bootcmd`` script that keeps cloud-init's copies of the user data root-only."""
    secrets_dir = DAEMON_CONFIG_PATH.rsplit("/", 1)[0]
    return (USERDATA_PRIVATE_SH.replace("@LOG_FUNCTION@", _LOG_FUNCTION).replace("@SECRETS_DIR@", secrets_dir)
            .replace("@DAEMON_USER@", DAEMON_USER))


def metadata_firewall_script() -> str:
    """The ``bootcmd`` script that closes :data:`METADATA_ADDRESS` to all but root and the daemon's user."""
    return (METADATA_FIREWALL_SH.replace("@LOG_FUNCTION@", _LOG_FUNCTION).replace("@ADDRESS@", METADATA_ADDRESS)
            .replace("@ADDRESSES6@", " ".join(METADATA_ADDRESSES6)).replace("@DAEMON_USER@", DAEMON_USER))


def guard_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """The cloud-config part with both ``bootcmd`` entries (order 11: after the daemon's users exist)."""
    del plan  # the same on every instance
    cloud = {"bootcmd": [["sh", "-c", userdata_private_script()], ["sh", "-c", metadata_firewall_script()]]}
    return [UserDataPart("soong-guard", "cloud-config", cloud, order=11)]
