#!/usr/bin/env bash
# Start a private sshd on 127.0.0.1 for the remote-worker tests (tests/remote), as root on Debian.
# Everything lives in /tmp/torc-sshd/: host keys, sshd_config, a client key pair, authorized_keys,
# known_hosts and an ssh client config. The user's own ~/.ssh is not touched: point torc at the
# client config with `torc remote ... --ssh-config /tmp/torc-sshd/ssh_config` (or
# TORC_SSH_CONFIG=/tmp/torc-sshd/ssh_config).
# Usage: scripts/sshd-up.sh [PORT]   (default 2222, or TORC_TEST_SSHD_PORT)   Stop: scripts/sshd-down.sh
set -euo pipefail
PORT="${1:-${TORC_TEST_SSHD_PORT:-2222}}"
D=/tmp/torc-sshd
if ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # no systemd here: the package's own service start fails harmlessly; ours runs below
  apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
fi
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
mkdir -p "$D" /run/sshd
chmod 700 "$D"
if [ -f "$D/sshd.pid" ] && kill -0 "$(cat "$D/sshd.pid")" 2>/dev/null; then
  echo "sshd ready (already running, pid $(cat "$D/sshd.pid"), port $(cat "$D/port"))"; exit 0
fi
[ -f "$D/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$D/ssh_host_ed25519_key"
[ -f "$D/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C torc-test -f "$D/id_ed25519"
cp "$D/id_ed25519.pub" "$D/authorized_keys"
chmod 600 "$D/authorized_keys"
# the port asked for, or the next free one (the tests read it from $D/port)
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do port_busy "$PORT" || break; PORT=$((PORT + 1)); done
echo "$PORT" > "$D/port"
# ::1 too where this machine has IPv6 loopback (tests for `[::1]:PORT` workers use it)
LISTEN6=""; grep -qs '^0\{31\}1 ' /proc/net/if_inet6 && LISTEN6="ListenAddress [::1]"
cat > "$D/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
$LISTEN6
HostKey $D/ssh_host_ed25519_key
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
# authorized_keys lives under /tmp (world-writable), which StrictModes would refuse
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
CONF
cat > "$D/ssh_config" <<CONF
# Client settings for the test sshd (pass with: ssh -F $D/ssh_config, torc remote --ssh-config ...)
Host *
  IdentityFile $D/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $D/known_hosts
  StrictHostKeyChecking accept-new
  LogLevel ERROR
CONF
"$SSHD" -t -f "$D/sshd_config"
"$SSHD" -f "$D/sshd_config" -E "$D/sshd.log"
for i in $(seq 50); do
  ssh -F "$D/ssh_config" -o BatchMode=yes -o ConnectTimeout=5 -p "$PORT" 127.0.0.1 true 2>/dev/null && break
  sleep 0.2
done
ssh -F "$D/ssh_config" -o BatchMode=yes -o ConnectTimeout=5 -p "$PORT" 127.0.0.1 true
echo "sshd ready on 127.0.0.1:$PORT (pid $(cat "$D/sshd.pid")); client config: $D/ssh_config"
