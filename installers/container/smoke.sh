#!/usr/bin/env bash
# Smoke test of the OCI image (Dockerfile at the repo root) without a Docker engine:
# buildah builds it, podman runs it against a mock MCP server on 127.0.0.1.
#
#   installers/container/smoke.sh [STATIC_BINARY]
#
# Without an argument the static binary is built: musl when the target is installed (or can be
# added), else glibc with +crt-static (SMOKE_TARGET=musl|gnu forces one). Cargo builds into
# target/static/ so other builds in target/ are not disturbed; CARGO_BUILD_JOBS is honoured.
# Every podman/buildah setting comes from installers/container/*.in, instantiated in a temp
# dir and passed through CONTAINERS_CONF & co.: images, containers, locks and logs live in that
# temp dir and are deleted on exit; nothing under /etc is changed.
# Prints one line per check and, last, exactly "N passed, M failed"; exits non-zero on failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BUILD_TIMEOUT="${SMOKE_BUILD_TIMEOUT:-3600}" # cargo, on 2 shared cores with LTO
STEP_TIMEOUT="${SMOKE_STEP_TIMEOUT:-120}"    # each buildah/podman command
IMAGE="localhost/clerk/mcp-server:smoke-$$"
NAME="clerk-mcp-smoke-$$"

pass=0
fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { # check NAME COMMAND... : ok when the command succeeds
  local name="$1"
  shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
note() { echo "   $*"; }

T=""
MOCK_PID=""
# buildah and podman (as root) keep a blob-info cache in /var/lib/containers/cache whatever the
# storage config says; if this run is what creates it, this run removes it.
[ -e /var/lib/containers ] && VLC_EXISTED=1 || VLC_EXISTED=0
cleanup() {
  if [ -n "$MOCK_PID" ]; then kill "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; fi
  if [ -n "$T" ] && [ -d "$T" ]; then
    if [ -f "$T/containers.conf" ]; then
      timeout 60 podman rm -f -t 0 "$NAME-session" "$NAME-volume" "$NAME-version" >/dev/null 2>&1
      timeout 60 podman image unmount -a >/dev/null 2>&1
      timeout 60 podman volume rm -f "$NAME-config" >/dev/null 2>&1
      timeout 60 podman rmi -f "$IMAGE" >/dev/null 2>&1
      timeout 60 buildah rm -a >/dev/null 2>&1
    fi
    rm -rf "$T" 2>/dev/null || { sleep 1; rm -rf "$T"; }
  fi
  if [ "$VLC_EXISTED" = 0 ] && [ -d /var/lib/containers ]; then
    rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
    rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null
  fi
}
finish() {
  local rc=$?
  trap - EXIT INT TERM
  cleanup
  if [ "$fail" -eq 0 ] && [ "$rc" -ne 0 ]; then bad "aborted (exit $rc)"; fi
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ] && exit 0 || exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM
fatal() { bad "$*"; exit 1; }

T="$(mktemp -d /tmp/clerk-mcp-smoke.XXXXXX)"

# ---- tools ---------------------------------------------------------------------------------
need=()
for t in buildah podman runc python3 file; do
  command -v "$t" >/dev/null 2>&1 || need+=("$t")
done
command -v conmon >/dev/null 2>&1 || [ -x /usr/libexec/podman/conmon ] || need+=(conmon)
if [ ${#need[@]} -gt 0 ]; then
  echo "   installing: ${need[*]}"
  pkgs=("${need[@]/python3/python3-minimal}")
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null 2>&1
  timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${pkgs[@]}" >"$T/apt.log" 2>&1 || { tail -20 "$T/apt.log"; fatal "apt-get install ${pkgs[*]}"; }
fi

# ---- the static binary -----------------------------------------------------------------------
if [ $# -ge 1 ]; then
  BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  [ -f "$BIN" ] || fatal "no such binary: $1"
  note "binary: $BIN (given)"
else
  target="${SMOKE_TARGET:-}"
  if [ -z "$target" ]; then
    if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
      timeout 60 rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1; then
      target=musl
    else
      target=gnu
    fi
  fi
  export CARGO_TARGET_DIR="$REPO/target/static"
  case "$target" in
  musl)
    triple=x86_64-unknown-linux-musl
    if ! command -v musl-gcc >/dev/null 2>&1; then # for ring's C code
      timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        musl-tools >"$T/apt.log" 2>&1 || note "musl-tools not installed: trying without"
    fi
    build=(cargo build --release --locked --target "$triple")
    ;;
  gnu)
    triple=x86_64-unknown-linux-gnu
    # With --target given, RUSTFLAGS reach only the target's crates, not build scripts.
    export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
    build=(cargo build --release --locked --target "$triple")
    ;;
  *) fatal "SMOKE_TARGET must be musl or gnu, not $target" ;;
  esac
  note "building: ${build[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  t0=$SECONDS
  (cd "$REPO" && timeout "$BUILD_TIMEOUT" "${build[@]}") >"$T/cargo.log" 2>&1 ||
    { tail -30 "$T/cargo.log"; fatal "cargo build ($triple)"; }
  BIN="$CARGO_TARGET_DIR/$triple/release/clerk-mcp-server"
  note "built $triple in $((SECONDS - t0))s"
fi

desc="$(file -b "$BIN")"
note "file: $desc"
lddout="$(ldd "$BIN" 2>&1 | head -3 | tr '\n' ' ')"
note "ldd: $lddout"
if [[ "$desc" == *ELF*x86-64* && ("$desc" == *"statically linked"* || "$desc" == *"static-pie linked"*) &&
  ("$lddout" == *"not a dynamic executable"* || "$lddout" == *"statically linked"*) ]]; then
  ok "binary is a static x86-64 executable"
else
  fatal "binary is a static x86-64 executable"
fi
HOST_VERSION="$(timeout 10 "$BIN" --version)" || fatal "$BIN --version"
VERSION="${HOST_VERSION##* }"
note "version: $HOST_VERSION"

# ---- container tool config: everything under $T ---------------------------------------------
for f in containers.conf storage.conf registries.conf; do
  sed "s|@ROOT@|$T|g" "$HERE/$f.in" >"$T/$f"
done
mkdir -p "$T/run" "$T/tmp" "$T/xdg-config" "$T/cni"
chmod 0700 "$T/run"
export CONTAINERS_CONF="$T/containers.conf"
export CONTAINERS_STORAGE_CONF="$T/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$T/registries.conf"
export REGISTRIES_CONFIG_PATH="$T/registries.conf"
export XDG_RUNTIME_DIR="$T/run"
export XDG_CONFIG_HOME="$T/xdg-config"
export TMPDIR="$T/tmp"
POLICY="$HERE/policy.json"

# ---- image -----------------------------------------------------------------------------------
# The build context is staged like the repo (Dockerfile, .dockerignore, the config dir) with the
# binary where .dockerignore lets it through, plus a file that .dockerignore must keep out.
CTX="$T/context"
mkdir -p "$CTX/installers/container/config-dir" "$CTX/target/static/smoke/release"
cp "$REPO/Dockerfile" "$REPO/.dockerignore" "$CTX/"
cp -a "$REPO/installers/container/config-dir/." "$CTX/installers/container/config-dir/"
touch "$CTX/installers/container/config-dir/.gitkeep" # as in git, even if it was lost
cp "$BIN" "$CTX/target/static/smoke/release/clerk-mcp-server"
head -c 1048576 /dev/zero >"$CTX/target/static/smoke/release/not-for-the-image"

t0=$SECONDS
if timeout "$STEP_TIMEOUT" buildah bud --signature-policy "$POLICY" --format oci \
  --build-arg BINARY=target/static/smoke/release/clerk-mcp-server \
  --build-arg VERSION="$VERSION" \
  -f "$CTX/Dockerfile" -t "$IMAGE" "$CTX" >"$T/buildah.log" 2>&1; then
  ok "buildah builds the Dockerfile (FROM scratch) in $((SECONDS - t0))s"
else
  tail -20 "$T/buildah.log"
  fatal "buildah builds the Dockerfile"
fi

podman image inspect "$IMAGE" >"$T/inspect.json" 2>"$T/inspect.err" || fatal "podman image inspect"
inspect() { # inspect PYTHON-EXPR : true when the expression over the image config `c` holds
  python3 - "$T/inspect.json" "$1" <<'EOF'
import json, sys
img = json.load(open(sys.argv[1]))[0]
c = img.get("Config") or {}
labels = c.get("Labels") or img.get("Labels") or {}
env = dict(e.split("=", 1) for e in c.get("Env") or [])
ok = eval(sys.argv[2], {"c": c, "labels": labels, "env": env, "img": img})
if not ok:
    print("   got:", json.dumps({"User": c.get("User"), "Entrypoint": c.get("Entrypoint"),
          "Cmd": c.get("Cmd"), "Env": c.get("Env"), "WorkingDir": c.get("WorkingDir"),
          "Labels": labels}, sort_keys=True))
sys.exit(0 if ok else 1)
EOF
}
check "image runs as non-root: User is 65532:65532" \
  inspect 'c.get("User") == "65532:65532"'
check "entrypoint is the binary, no default command" \
  inspect 'c.get("Entrypoint") == ["/clerk-mcp-server"] and not c.get("Cmd")'
check "env: CLERK_MCP_IN_CONTAINER=1, CLERK_MCP_CONFIG_DIR=/config" \
  inspect 'env.get("CLERK_MCP_IN_CONTAINER") == "1" and env.get("CLERK_MCP_CONFIG_DIR") == "/config"'
check "OCI labels: title, description, source, licenses=MIT, version=$VERSION" \
  inspect "labels.get('org.opencontainers.image.title') == 'clerk-mcp-server' and labels.get('org.opencontainers.image.description') and labels.get('org.opencontainers.image.source') == 'https://github.com/clerk/mcp-server' and labels.get('org.opencontainers.image.licenses') == 'MIT' and labels.get('org.opencontainers.image.version') == '$VERSION'"
size="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0].get("Size"))' "$T/inspect.json")"
note "image size: $size bytes"

# The image's file system: only the binary and an empty /config owned by 65532.
if MNT="$(timeout "$STEP_TIMEOUT" podman image mount "$IMAGE" 2>"$T/mount.err")" && [ -d "$MNT" ]; then
  entries="$(cd "$MNT" && find . -mindepth 1 | sort | tr '\n' ' ')"
  check "image holds only /clerk-mcp-server and /config (got: $entries)" \
    test "$entries" = "./clerk-mcp-server ./config "
  check "/config is an empty directory owned by 65532:65532, mode 755" \
    test "$(stat -c '%F %u:%g %a' "$MNT/config" 2>&1)" = "directory 65532:65532 755"
  # shellcheck disable=SC2016 # expanded by the inner bash
  check "/clerk-mcp-server is executable and identical to the binary" \
    bash -c '[ -x "$1" ] && cmp -s "$1" "$2"' _ "$MNT/clerk-mcp-server" "$BIN"
  timeout 60 podman image unmount "$IMAGE" >/dev/null 2>&1
else
  bad "podman image mount: $(head -3 "$T/mount.err")"
fi

# ---- run: --version --------------------------------------------------------------------------
out="$(timeout "$STEP_TIMEOUT" podman run --rm --pull=never --network none --name "$NAME-version" "$IMAGE" --version 2>"$T/version.err")"
rc=$?
if [ $rc -eq 0 ] && [ "$out" = "$HOST_VERSION" ]; then
  ok "podman run --rm IMAGE --version prints '$out'"
else
  bad "podman run --rm IMAGE --version: exit $rc, printed '$out'"
  head -20 "$T/version.err"
fi

# ---- run: an MCP session through the container -----------------------------------------------
timeout 900 python3 "$HERE/mock_mcp.py" --port-file "$T/port" --log "$T/mock.log" \
  --lifetime 600 >"$T/mock.out" 2>&1 &
MOCK_PID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { cat "$T/mock.out"; fatal "mock MCP server starts"; }
PORT="$(cat "$T/port")"
URL="http://127.0.0.1:$PORT/mcp"
note "mock MCP server: $URL"

t0=$SECONDS
fail0=$fail
drv_rc=""
while IFS= read -r line; do
  case "$line" in
  ok:*) ok "${line#ok: }" ;;
  FAIL:*) bad "${line#FAIL: }" ;;
  rc:*) drv_rc="${line#rc:}" ;;
  *) echo "   $line" ;;
  esac
done < <(timeout 300 python3 "$HERE/stdio_session.py" --timeout 60 \
  --container "$NAME-session" --stderr-file "$T/session.err" -- \
  podman run -i --rm --pull=never --network host --name "$NAME-session" "$IMAGE" "$URL"
  echo "rc:$?")
note "session took $((SECONDS - t0))s"
if [ "$drv_rc" != 0 ] && [ "$fail" -eq "$fail0" ]; then
  bad "MCP session driver ended with exit ${drv_rc:-unknown}"
fi
if [ "$fail" -gt "$fail0" ]; then
  echo "   --- container stderr:"
  tail -30 "$T/session.err" | sed 's/^/   /'
fi

# shellcheck disable=SC2016 # expanded by the inner bash
check "the container is removed after the session (--rm)" \
  bash -c '[ -z "$(timeout 60 podman ps -a -q --filter name="$1")" ]' _ "$NAME-session"

# What the mock saw: one session, ended with a DELETE carrying its id.
python3 - "$T/mock.log" >"$T/mock-check.out" 2>&1 <<'EOF'
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
init = [e for e in log if e["method"] == "POST" and isinstance(e["body"], dict)
        and e["body"].get("method") == "initialize"]
posts = [e for e in log if e["method"] == "POST"]
deletes = [e for e in log if e["method"] == "DELETE"]
print("requests:", ", ".join(
    f'{e["method"]} {e["path"]}'
    + (f' {e["body"].get("method")}' if isinstance(e["body"], dict) else "") + f' -> {e["status"]}'
    for e in log))
sids = {e["session"] for e in posts if e is not init[0]} if init else set()
ok = (len(init) == 1 and all(e["status"] in (200, 202) for e in posts) and len(sids) == 1
      and None not in sids and len(deletes) == 1 and deletes[0]["session"] in sids
      and deletes[0]["status"] == 200)
sys.exit(0 if ok else 1)
EOF
rc=$?
note "$(head -1 "$T/mock-check.out")"
if [ $rc -eq 0 ]; then
  ok "the mock saw one session, every request in it, and a DELETE of it"
else
  bad "the mock saw one session, every request in it, and a DELETE of it"
  tail -n +2 "$T/mock-check.out" | sed 's/^/   /'
fi

# ---- run: /config is writable by the non-root user through a named volume --------------------
# As in the README's client config (-v clerk-mcp:/config): a new volume takes /config's owner.
timeout "$STEP_TIMEOUT" podman run -i --rm --pull=never --network host --name "$NAME-volume" \
  -v "$NAME-config:/config" "$IMAGE" "$URL" --log-file /config/proxy.log --log-level debug \
  </dev/null >"$T/volume.out" 2>"$T/volume.err"
rc=$?
vol="$(timeout 60 podman volume inspect --format '{{.Mountpoint}}' "$NAME-config" 2>/dev/null)"
if [ $rc -eq 0 ] && [ -n "$vol" ] && [ -s "$vol/proxy.log" ] &&
  [ "$(stat -c '%u:%g' "$vol/proxy.log")" = "65532:65532" ]; then
  ok "a named volume on /config is writable by uid 65532 (--log-file /config/proxy.log)"
else
  bad "a named volume on /config is writable by uid 65532: exit $rc, $(find "$vol" -mindepth 1 -printf '%u:%g %p ' 2>&1)"
  tail -10 "$T/volume.err" | sed 's/^/   /'
fi
