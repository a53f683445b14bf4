"""A trial of the metadata firewall: the bootstrap's own script in a network namespace of its own, and who gets through.

:data:`TRIAL` is a shell script for ``unshare --net sh -c TRIAL trial GUARD PROBE SERVER
USERS SETTINGS``: it brings the namespace's loopback up with the metadata addresses on it
(IPv4 169.254.169.254 and the IPv6 ones of :mod:`soong.plugins.sglang.hardening`), runs
GUARD (the ``bootcmd`` script) twice with SETTINGS (``NAME=value`` words, as ``env``
takes them), starts SERVER (an HTTP listener on every address) and, as each of USERS,
runs PROBE, which prints ``<user> <ipv4 result> <ipv6 result>`` (``reached`` or
``refused``). Then it prints the boot-log lines the script wrote, prefixed ``log``.

Run from outside any container (``unshare`` keeps the caller's capabilities in the new
namespace), so the host's and the container's own rules are never touched. The clients
bind the loopback address: with the metadata address as their source too, the kernel's
reset to a refused client (a packet without a socket, so without an owner) would itself
be rejected. On an instance the source is the instance's own address.
"""

from __future__ import annotations

from soong.plugins.sglang.hardening import METADATA_ADDRESS, METADATA_ADDRESSES6

PROBE = f"""import socket, sys
def attempt(address, source):
    try:
        socket.create_connection((address, 80), timeout=3, source_address=(source, 0)).close()
        return 'reached'
    except OSError as error:
        return 'refused' if error.errno == 111 else 'error-%s' % error.errno
print(sys.argv[1], attempt('{METADATA_ADDRESS}', '127.0.0.1'), attempt('{METADATA_ADDRESSES6[0]}', '::1'))
"""

SERVER = f"""import http.server, socket, threading
class Six(http.server.HTTPServer):
    address_family = socket.AF_INET6
servers = [http.server.HTTPServer(('{METADATA_ADDRESS}', 80), http.server.BaseHTTPRequestHandler),
           Six(('{METADATA_ADDRESSES6[0]}', 80), http.server.BaseHTTPRequestHandler)]
for server in servers[1:]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""

TRIAL = f"""set -e
log=/tmp/soong-metadata-trial.log
ip link set lo up
ip addr add {METADATA_ADDRESS}/32 dev lo
ip -6 addr add {METADATA_ADDRESSES6[0]}/128 dev lo nodad
env $5 SOONG_BOOT_LOG=$log sh -c "$1"
env $5 SOONG_BOOT_LOG=$log sh -c "$1"
python3 -c "$3" &
sleep 1
for user in $4; do
  runuser -u "$user" -- python3 -c "$2" "$user"
done
kill $!
sed 's/^/log /' $log
rm -f $log
"""


def parse(output: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """``({user: (ipv4 result, ipv6 result)}, [boot-log lines])`` from the trial's output."""
    reached: dict[str, tuple[str, str]] = {}
    log = []
    for line in output.splitlines():
        words = line.split(" ", 1)
        if words[0] == "log":
            log.append(words[1])
        elif len(line.split()) == 3:
            user, four, six = line.split()
            reached[user] = (four, six)
    return reached, log


def command(guard: str, users: str, settings: str = "") -> list[str]:
    """The ``unshare --net`` command line of a trial of ``guard`` for ``users`` (space-separated)."""
    return ["unshare", "--net", "sh", "-c", TRIAL, "trial", guard, PROBE, SERVER, users, settings]
