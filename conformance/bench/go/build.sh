# Sourced by conformance/bench/run and run-against-go.sh: builds this folder's sockjs-go
# server offline, from Debian's packages, in GOPATH mode over /usr/share/gocode (where
# golang-github-igm-sockjs-go-dev and golang-github-gorilla-websocket-dev put their source;
# the packages ship no go.mod).
#
# build_go_echo OUT WORK: installs golang-go and golang-github-igm-sockjs-go-dev with
# apt-get when they are missing (as root; bounded in time, its output in WORK/apt.log),
# then builds OUT (Go's cache in WORK/gocache). On failure it returns 1 with the reason in
# $go_unavailable.

go_source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_gocode=/usr/share/gocode
go_packages=(golang-go golang-github-igm-sockjs-go-dev)
go_unavailable=""

go_ready() {
  command -v go >/dev/null 2>&1 &&
    [ -d "$go_gocode/src/github.com/igm/sockjs-go/v3/sockjs" ] &&
    [ -d "$go_gocode/src/github.com/gorilla/websocket" ]
}

build_go_echo() {
  local out="$1" work="$2"
  if ! go_ready; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      go_unavailable="needs Debian's ${go_packages[*]} (apt-get install, as root)"
      return 1
    fi
    echo "installing ${go_packages[*]} (apt-get)..." >&2
    if ! { timeout 300 apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${go_packages[@]}"; } \
      >"$work/apt.log" 2>&1 || ! go_ready; then
      tail -n 20 "$work/apt.log" >&2
      go_unavailable="apt-get install ${go_packages[*]} failed"
      return 1
    fi
  fi
  if ! (cd "$go_source_dir" && GO111MODULE=off GOPATH="$go_gocode" GOFLAGS= GOPROXY=off \
    GOTOOLCHAIN=local GOCACHE="$work/gocache" go build -o "$out" .) >&2; then
    go_unavailable="go build of conformance/bench/go failed"
    return 1
  fi
}
