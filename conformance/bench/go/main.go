// A sockjs-go v3 test server for the benchmarks and the protocol suite, built offline
// from Debian's golang-github-igm-sockjs-go-dev (GOPATH mode, see conformance/bench/run):
//
//	/echo                     echo, response_limit 4096, raw websocket on /echo/websocket
//	/close                    closes every session on open with 3000 "Go away!"
//	/disabled_websocket_echo  echo, websocket transport disabled
//	/cookie_needed_echo       echo, JSESSIONID cookie enabled
//
// Build (Debian: apt-get install golang-go golang-github-igm-sockjs-go-dev), here:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go_echo .
//
// Usage: go_echo [ADDR] [-heartbeat-ms N] [-disconnect-ms N] [-permessage-deflate] [-yield]
// (ADDR default 127.0.0.1:0, loopback only). Prints "listening on http://ADDR" once bound.
//
// -permessage-deflate lets gorilla/websocket negotiate compression (no context takeover
// only). -yield calls runtime.Gosched after each request: a workaround, off by default, for
// sockjs-go detaching a finished HTTP receiver in a goroutine of its own, which loses the
// race against a client that re-opens its receiving request at once on a kept-alive
// connection, and then closes the session with c[2010,"Another connection still open"].
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/igm/sockjs-go/v3/sockjs"
)

func echo(s sockjs.Session) {
	for {
		msg, err := s.Recv()
		if err != nil || s.Send(msg) != nil {
			return
		}
	}
}

func main() {
	heartbeat := flag.Int("heartbeat-ms", 25000, "heartbeat delay (ms)")
	disconnect := flag.Int("disconnect-ms", 5000, "disconnect delay (ms)")
	deflate := flag.Bool("permessage-deflate", false, "negotiate permessage-deflate")
	yield := flag.Bool("yield", false, "yield to other goroutines after each request")
	addr := "127.0.0.1:0"
	args := os.Args[1:]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		addr, args = args[0], args[1:]
	}
	flag.CommandLine.Parse(args)
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "go_echo: want a loopback IP:PORT, not %q\n", addr)
		os.Exit(2)
	}

	base := sockjs.DefaultOptions
	base.HeartbeatDelay = time.Duration(*heartbeat) * time.Millisecond
	base.DisconnectDelay = time.Duration(*disconnect) * time.Millisecond
	// Any origin, as sockjs-node and the suite expect (gorilla's default refuses
	// cross-origin upgrades).
	base.WebsocketUpgrader = &websocket.Upgrader{
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: *deflate,
	}

	echoOpts := base
	echoOpts.ResponseLimit = 4096
	echoOpts.RawWebsocket = true
	closeOpts := base
	closeOpts.RawWebsocket = true
	noWsOpts := base
	noWsOpts.Websocket = false
	cookieOpts := base
	cookieOpts.JSessionID = sockjs.DefaultJSessionID

	// Plain prefix routing, not http.ServeMux, which would clean paths and redirect.
	handlers := []*sockjs.Handler{
		sockjs.NewHandler("/echo", echoOpts, echo),
		sockjs.NewHandler("/close", closeOpts, func(s sockjs.Session) { s.Close(3000, "Go away!") }),
		sockjs.NewHandler("/disabled_websocket_echo", noWsOpts, echo),
		sockjs.NewHandler("/cookie_needed_echo", cookieOpts, echo),
	}
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range handlers {
			p := h.Prefix()
			if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
				h.ServeHTTP(w, r)
				if *yield {
					runtime.Gosched()
				}
				return
			}
		}
		http.NotFound(w, r)
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go_echo: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	if err := http.Serve(ln, route); err != nil {
		fmt.Fprintf(os.Stderr, "go_echo: %v\n", err)
		os.Exit(1)
	}
}
