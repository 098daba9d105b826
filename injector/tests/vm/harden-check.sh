#!/bin/busybox sh
# The shim's hardened exec inside the qemu VM (Debian's 6.1 cloud kernel: Landlock ABI 2,
# older than the ABI 6 rights Hush asks for). Run by the VM's /init before the guard suite;
# prints one "harden: ok|FAIL ..." line per check and exits non-zero if any failed.
set -u
fails=0
ok() { echo "harden: ok: $1"; }
fail() { echo "harden: FAIL: $1"; fails=$((fails + 1)); }
S=/bin/injector

mkdir -p /tmp/hx/secret /tmp/hx/public
echo do-not-read > /tmp/hx/secret/key
echo fine > /tmp/hx/public/readme

# Landlock, best effort: the subtree is denied with the kernel's ABI, the rest works.
out=$(HUSH_LANDLOCK="deny:/tmp/hx/secret" $S -- sh -c 'cat /tmp/hx/public/readme; cat /tmp/hx/secret/key 2>/dev/null && echo LEAK' 2>/tmp/hx/log)
case "$out" in
  *LEAK*|*do-not-read*) fail "a denied subtree was readable: $out" ;;
  *fine*) ok "deny subtree enforced, the rest readable" ;;
  *) fail "unexpected output: $out $(cat /tmp/hx/log)" ;;
esac
if grep -q "partially enforced at ABI 2" /tmp/hx/log; then ok "log names the enforced ABI: $(grep -o 'landlock=[^=]*ABI [0-9]*' /tmp/hx/log)"; else fail "log: $(cat /tmp/hx/log)"; fi

# `required` fails closed where the kernel cannot enforce the whole policy.
HUSH_LANDLOCK="required;deny:/tmp/hx/secret" $S -- echo STARTED >/tmp/hx/out 2>/tmp/hx/log
code=$?
if [ "$code" = 78 ] && ! grep -q STARTED /tmp/hx/out; then ok "required policy on ABI 2: exit 78, app not started"; else fail "required: exit $code $(cat /tmp/hx/out /tmp/hx/log)"; fi

# TCP rules need ABI 4: best effort leaves them unenforced and says so; required refuses.
HUSH_LANDLOCK="connect:5432" $S -- true 2>/tmp/hx/log
if [ $? = 0 ]; then ok "connect rule on ABI 2 is best effort"; else fail "connect best effort: $(cat /tmp/hx/log)"; fi
HUSH_LANDLOCK="required;connect:5432" $S -- true 2>/tmp/hx/log
if [ $? = 78 ]; then ok "required connect rule on ABI 2: exit 78"; else fail "required connect: $(cat /tmp/hx/log)"; fi

# Capabilities and no-new-privs as the app sees them.
status=$(HUSH_CAPABILITIES=NET_BIND_SERVICE $S -- cat /proc/self/status)
for f in CapEff CapPrm CapBnd; do
  v=$(echo "$status" | grep "^$f:" | tr -d '\t' | cut -d: -f2)
  if [ "$v" = 0000000000000400 ]; then ok "$f = $v"; else fail "$f = $v"; fi
done
v=$(echo "$status" | grep '^NoNewPrivs:' | tr -d '\t' | cut -d: -f2)
if [ "$v" = 1 ]; then ok "NoNewPrivs = 1"; else fail "NoNewPrivs = $v"; fi
limit=$($S -- cat /proc/self/limits | grep 'Max core file size')
case "$limit" in *" 1 "*" 1 "*) ok "RLIMIT_CORE = 1" ;; *) fail "core limit: $limit" ;; esac

# No-new-privs: a setuid-root program run by nobody keeps nobody's euid through the shim.
plain=$(/bin/as-nobody /bin/show-euid)
through=$(/bin/as-nobody $S -- /bin/show-euid 2>/dev/null)
if [ "$plain" = 0 ] && [ "$through" = 65534 ]; then ok "setuid: euid 0 without the shim, 65534 through it"; else fail "setuid: without $plain, through $through"; fi

[ "$fails" = 0 ]
