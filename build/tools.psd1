# Every program that the tests, the demo and the benchmark run, and the Debian package that has it.
# ./build.ps1 Bootstrap installs the missing ones; tests/Pester/Bootstrap.Tests.ps1 checks that each program the
# lab code calls is listed here, so a fresh machine never lacks one.
@{
    Tools = @{
        'ip'               = 'iproute2'
        'ss'               = 'iproute2'
        'iptables'         = 'iptables'
        'iptables-save'    = 'iptables'
        'iptables-restore' = 'iptables'
        'iptables-legacy'  = 'iptables'
        'iptables-legacy-save' = 'iptables'
        'ip6tables'        = 'iptables'
        'ip6tables-save'   = 'iptables'
        'ip6tables-restore' = 'iptables'
        'nft'              = 'nftables'
        'conntrack'        = 'conntrack'
        'ping'             = 'iputils-ping'
        'socat'            = 'socat'
        'unshare'          = 'util-linux'
        'nsenter'          = 'util-linux'
        'setpriv'          = 'util-linux'
        'mount'            = 'mount'
        'umount'           = 'mount'
        'dnsmasq'          = 'dnsmasq-base'
        'strace'           = 'strace'
        'getent'           = 'libc-bin'
        'timeout'          = 'coreutils'
        'chmod'            = 'coreutils'
        'sleep'            = 'coreutils'
        'head'             = 'coreutils'
        'kill'             = 'procps'
        'bash'             = 'bash'
        'sh'               = 'dash'
        'sed'              = 'sed'
        'env'              = 'coreutils'
        'flock'            = 'util-linux'
    }
}
