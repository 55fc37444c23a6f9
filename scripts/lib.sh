# Shared by scripts/test, scripts/demo and .ci/run. Source it; do not run it.

# The Debian packages rebound builds and tests with.
REBOUND_PACKAGES=(
  cmake ninja-build g++ pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libasio-dev
  libcurl4-openssl-dev libcpp-httplib-dev curl
  libpq-dev postgresql-15 libsqlite3-dev
  libhiredis-dev redis-server
  nginx-light haproxy
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus
  ccache
  python3
)

# Installs the packages that are missing, and only those.
rebound_ensure_packages() {
  local missing=()
  local p
  for p in "${REBOUND_PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "rebound: installing missing packages: ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "rebound: these packages are missing and I am not root: ${missing[*]}" >&2
      echo "rebound: install them with: apt-get install ${missing[*]}" >&2
      return 1
    fi
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
}

# ccache as the compiler launcher when it is there (scripts install it): a
# rebuild after a small change, and CI's three trees after a developer's own
# builds on the same machine, compile only what changed.
# Paths are hashed relative to the checkout (CCACHE_BASEDIR, CCACHE_NOHASHDIR),
# so a fresh clone in another folder (CI's) finds what a developer compiled.
rebound_launcher() {
  if command -v ccache >/dev/null 2>&1; then
    echo "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache"
  fi
}
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(pwd)}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
fi

# Configures (once) and builds the main build tree in build/.
rebound_build() {
  local werror=${REBOUND_WERROR:-OFF}
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREBOUND_WERROR="$werror" \
    $(rebound_launcher) "$@"
  cmake --build build
}
