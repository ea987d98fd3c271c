# Shared by the set-up scripts: installs what building Overture needs, once.
# Sourced, not executed.

overture_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Build output lives outside the clone so fresh clones (and CI) reuse it; RocksDB alone takes
# about 12 minutes to compile from scratch on two cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/overture-target}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Whether the C library libclang that bindgen loads (through clang-sys) is installed: a file
# named libclang.so, libclang.so.N or libclang-N.so[.M] in LIBCLANG_PATH, an LLVM library
# directory or a system library directory, or known to the dynamic linker. libclang-cpp (the C++
# interface that Debian's LLVM packages bring) is a different library and does not count.
# OVERTURE_SYSROOT prefixes the directories and OVERTURE_LDCONFIG replaces `ldconfig -p`, so a
# test can point the check at a fake library layout.
have_libclang() {
  local root="${OVERTURE_SYSROOT:-}" dir file name
  local dirs=(${LIBCLANG_PATH:+"$LIBCLANG_PATH"} "$root"/usr/lib/llvm-*/lib "$root"/usr/lib
    "$root"/usr/lib/*-linux-gnu "$root"/usr/lib64 "$root"/usr/local/lib "$root"/lib/*-linux-gnu)
  for dir in "${dirs[@]}"; do
    for file in "$dir"/libclang*.so*; do
      [ -e "$file" ] || continue
      name="${file##*/}"
      case "$name" in
        libclang.so | libclang.so.* | libclang-[0-9]*.so | libclang-[0-9]*.so.*) return 0 ;;
      esac
    done
  done
  ${OVERTURE_LDCONFIG:-ldconfig -p} 2>/dev/null \
    | grep -Eq '^[[:space:]]*libclang(-[0-9][0-9.]*)?\.so(\.[0-9.]+)?[[:space:]]'
}

# libclang: bindgen needs it to generate RocksDB's bindings. npm: the web UI's libraries.
ensure_build_deps() {
  if ! have_libclang; then
    echo "installing libclang-dev (needed to build RocksDB's bindings)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libclang-dev >/dev/null
  fi
  # npm: the web UI's libraries are installed from the npm registry when the api crate builds.
  if ! command -v npm >/dev/null; then
    echo "installing nodejs and npm (the web UI's libraries come from the npm registry)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust (https://rustup.rs) first" >&2
    exit 1
  fi
}

# A virtualenv outside the clone with the official Conductor Python SDK (and PyYAML), pinned in
# tests/python/requirements.txt; sets OVERTURE_PYTHON to its interpreter. Pinned requirements
# that are already installed cost pip no download.
ensure_python_sdk() {
  local venv="${OVERTURE_VENV:-$HOME/.cache/overture-python}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    python3 -m venv "$venv" 2>/dev/null || { as_root apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; }
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$overture_root/tests/python/requirements.txt"
  export OVERTURE_PYTHON="$venv/bin/python"
}

# The browser tests' tools: Debian's Chromium (no browser download), a font with Chinese glyphs
# (Debian's fonts-noto-cjk, unless fontconfig knows one already) and playwright-core, pinned in
# tests/browser/package-lock.json, installed again only when the lock file changes. Needs npm
# (ensure_build_deps installs it).
ensure_browser() {
  if [ -z "${OVERTURE_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    echo "installing chromium (for the web UI's browser tests)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  # A font with Chinese glyphs: the UI's Chinese browser test fails without one.
  if [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
    echo "installing fonts-noto-cjk (Chinese glyphs for the web UI's browser tests)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null
  fi
  local dir="$overture_root/tests/browser"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json" 2>/dev/null; then
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
      && cp package-lock.json node_modules/.installed-lock.json)
  fi
}

# The message brokers the event queue tests start: Debian's nats-server (NATS with JetStream)
# and rabbitmq-server.
ensure_brokers() {
  local missing=()
  if [ -z "${OVERTURE_NATS_SERVER:-}" ] && ! command -v nats-server >/dev/null 2>&1; then missing+=(nats-server); fi
  if [ -z "${OVERTURE_RABBITMQ_SERVER:-}" ] && ! [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then missing+=(rabbitmq-server); fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (for the event queue tests)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Tansu, a Kafka-protocol broker written in Rust, from crates.io (with its in-memory storage).
  local tansu="$HOME/.cache/overture-tools/tansu"
  if [ -z "${OVERTURE_TANSU:-}" ] && ! [ -x "$tansu/bin/tansu" ] && ! command -v tansu >/dev/null 2>&1; then
    echo "building tansu 0.6.0 from crates.io, once (a Kafka-protocol broker for the event queue tests; about 13 minutes on 2 cores)" >&2
    cargo install tansu --version 0.6.0 --locked --features dynostore --quiet \
      --root "$tansu" --target-dir "$tansu-build"
    rm -rf "$tansu-build"
  fi
}

# Prometheus and promtool for the alert rule and metrics tests (tests/tests/prometheus.rs):
# Debian's prometheus package. OVERTURE_PROMETHEUS and OVERTURE_PROMTOOL name other binaries.
# Where systemd runs, the package also enables its own prometheus service (port 9090); the tests
# do not use it: they start their own Prometheus on a free port.
ensure_prometheus() {
  local missing=()
  if [ -z "${OVERTURE_PROMETHEUS:-}" ] && ! command -v prometheus >/dev/null 2>&1; then missing+=(prometheus); fi
  if [ -z "${OVERTURE_PROMTOOL:-}" ] && ! command -v promtool >/dev/null 2>&1; then missing+=(promtool); fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing prometheus (${missing[*]}, for the alert rule and metrics tests)" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
}

# The official Conductor JavaScript SDK for its tests (tests/js), pinned in
# tests/js/package-lock.json, installed again only when the lock file changes. Needs npm
# (ensure_build_deps installs it).
ensure_js_sdk() {
  local dir="$overture_root/tests/js"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json" 2>/dev/null; then
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
      && cp package-lock.json node_modules/.installed-lock.json)
  fi
}
