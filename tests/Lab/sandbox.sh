#!/usr/bin/env bash
# Runs a command as the lab's "host": in new network, mount and PID namespaces of its own, never in the machine's.
#   tests/Lab/sandbox.sh COMMAND [ARG...]
# Inside: a fresh sysfs (so /sys/class/net shows this namespace's interfaces), a fresh tmpfs on /run (so the named
# namespaces, /run/netns, the xtables lock and NetnsNat's lock file live and die with the sandbox), overlays on
# /etc and /var/lib whose writes land in that tmpfs (so /etc/netns/NAME/resolv.conf, /etc/resolv.conf and NetnsNat's
# state store in /var/lib/netnsnat can be written by the tests without touching the machine's), and lo up. When COMMAND ends, the PID namespace ends: every process started inside (servers, stray
# children) is killed, and the namespaces go with the mounts that held them, on failure and on Ctrl+C too.
set -euo pipefail
if [ "${1:-}" = "--inside" ]; then
  shift
  mount -t sysfs sysfs /sys
  mount -t tmpfs -o mode=0755 tmpfs /run
  mkdir -p /run/netns /run/lock
  mkdir -p /run/sandbox-etc/upper /run/sandbox-etc/work
  mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/sandbox-etc/upper,workdir=/run/sandbox-etc/work /etc
  # The same for /var/lib, where NetnsNat keeps its state store (/var/lib/netnsnat): the machine's is never written.
  mkdir -p /run/sandbox-varlib/upper /run/sandbox-varlib/work
  mount -t overlay overlay -o lowerdir=/var/lib,upperdir=/run/sandbox-varlib/upper,workdir=/run/sandbox-varlib/work /var/lib
  # Any name lookup in the sandbox goes to the lab's resolver (203.0.113.53, when a test starts it), never the machine's.
  rm -f /etc/resolv.conf && echo 'nameserver 203.0.113.53' > /etc/resolv.conf
  ip link set lo up
  exec "$@"
fi
for tool in unshare ip mount stat; do
  command -v "$tool" >/dev/null || { echo "sandbox.sh: $tool is missing; run ./build.ps1 Bootstrap" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "sandbox.sh: the lab needs root (network namespaces, iptables); run it as root or under sudo" >&2; exit 2; }
# Remember the machine's own network namespace: the lab helper refuses to run in it.
NETNSNAT_OUTER_NETNS=$(stat -L -c %i /proc/self/ns/net)
export NETNSNAT_OUTER_NETNS
exec unshare --net --mount --pid --fork --mount-proc --propagation private -- "$0" --inside "$@"
