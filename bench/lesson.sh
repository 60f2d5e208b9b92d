#!/usr/bin/env bash
# The lesson's procedure for one namespace, as the plain commands it runs (the baseline of ./build.ps1 Bench):
# forwarding, the bridge address from ip, iptables -C/-A for MASQUERADE and the two FORWARD rules, and the
# namespace's default route through ip netns exec.   Usage: lesson.sh NAMESPACE BRIDGE OUTBOUND
set -eu
ns=$1 br=$2 out=$3
echo 1 > /proc/sys/net/ipv4/ip_forward
cidr=$(ip -o -f inet addr show "$br" | awk '{print $4}' | head -n 1)
addr=${cidr%/*}
len=${cidr#*/}
net="${addr%.*}.0/$len" # the lesson's guess at the network
iptables -t nat -C POSTROUTING -s "$net" -o "$out" -j MASQUERADE 2>/dev/null || iptables -t nat -A POSTROUTING -s "$net" -o "$out" -j MASQUERADE
iptables -C FORWARD -o "$br" -j ACCEPT 2>/dev/null || iptables -A FORWARD -o "$br" -j ACCEPT
iptables -C FORWARD -i "$br" -j ACCEPT 2>/dev/null || iptables -A FORWARD -i "$br" -j ACCEPT
ip netns exec "$ns" ip route add default via "$addr"
