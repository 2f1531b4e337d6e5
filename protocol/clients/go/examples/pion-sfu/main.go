// Command pion-sfu is a small selective forwarding unit on pion/webrtc v3
// that takes its whole configuration from an sfu-config agent through the
// sfuconfig package: rooms, each participant's published audio and video
// forwarded to the others, the demo page of sfu/web, and the same /ws
// signalling protocol as sfu-server (sfu/README.md).
//
//	pion-sfu [--agent ws://127.0.0.1:7070] [--token-file FILE] [--port N]
//	         [--host ADDR] [--log-level LEVEL] [--secrets-dir DIR] [--web DIR]
//
// A config applies to sessions created after its ack; live sessions keep
// the peer connection they were created with. A server.port change is
// nacked RESTART_REQUIRED unless --port overrides it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sfuconfig "github.com/sfu-config/sfu-config/protocol/clients/go"
)

const version = "0.1.0"

// sfu is the whole server: rooms, the runtime of the applied config, HTTP.
type sfu struct {
	client     *sfuconfig.Client
	rt         atomic.Pointer[runtime]
	log        *logger
	secretsDir string
	host       string
	port       int // --port, -1 when not given
	web        string

	mu      sync.Mutex
	rooms   map[string]*room
	sockets map[*peer]struct{}
	nextID  int64

	httpMu sync.Mutex
	http   *http.Server
	addr   net.Addr

	forwarded atomic.Int64
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func usage(fs *flag.FlagSet) {
	fmt.Fprintln(fs.Output(), "Usage: pion-sfu [options] (flags as sfu-server's)")
	fs.PrintDefaults()
}

func run(args []string) int {
	fs := flag.NewFlagSet("pion-sfu", flag.ContinueOnError)
	agent := fs.String("agent", "ws://127.0.0.1:7070", "agent to dial for config")
	tokenFile := fs.String("token-file", "", "bearer token sent to the agent (Authorization header)")
	port := fs.Int("port", -1, "HTTP/signalling port; overrides server.port (0 = any free port)")
	host := fs.String("host", "0.0.0.0", "interface the HTTP server listens on")
	level := fs.String("log-level", "info", "log level until a config sets logging.level")
	secretsDir := fs.String("secrets-dir", envOr("SFU_SECRETS_DIR", sfuconfig.DefaultSecretsDir), "the only directory TURN secret files are read from")
	web := fs.String("web", "sfu/web", "directory of the demo page (index.html, app.js)")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *port < -1 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "pion-sfu: --port must be 0..65535 and no positional arguments are taken")
		return 2
	}
	log, err := newLogger(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pion-sfu:", err)
		return 2
	}
	token := ""
	if *tokenFile != "" {
		if token, err = sfuconfig.ReadTokenFile(*tokenFile); err != nil {
			fmt.Fprintln(os.Stderr, "pion-sfu:", err)
			return 2
		}
	}
	s := &sfu{log: log, secretsDir: *secretsDir, host: *host, port: *port, web: *web, rooms: map[string]*room{}, sockets: map[*peer]struct{}{}}
	s.client, err = sfuconfig.New(sfuconfig.Options{
		URL: *agent, Token: token, Name: "pion-sfu", Version: version,
		SchemaVersions: []int{1, 2}, SecretsDir: *secretsDir,
		Apply: s.apply, ReloadSecrets: s.reloadSecrets, Health: true,
		Logf: log.infof,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pion-sfu:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if s.port >= 0 {
		if err := s.startHTTP(s.port); err != nil {
			fmt.Fprintln(os.Stderr, "pion-sfu:", err)
			return 1
		}
	}
	_ = s.client.Run(ctx)
	s.shutdown()
	return 0
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// apply is the sfuconfig Apply callback: all of cfg for new sessions, or nothing.
func (s *sfu) apply(_ context.Context, cfg *sfuconfig.Config) error {
	next := cfg.AsV2()
	if cur := s.client.Current(); cur != nil && s.port < 0 {
		if was := cur.AsV2().Server.Port; was != next.Server.Port {
			return sfuconfig.RestartRequired("/server/port",
				fmt.Sprintf("server.port %d -> %d needs a restart; version %d stays applied", was, next.Server.Port, cur.Version))
		}
	}
	rt, err := buildRuntime(cfg, s.secretsDir)
	if err != nil {
		return err
	}
	if s.port < 0 {
		if err := s.startHTTP(next.Server.Port); err != nil {
			return sfuconfig.ApplyFailed("/server/port", err.Error())
		}
	}
	s.rt.Store(rt)
	s.log.setLevel(next.Logging.Level)
	s.log.infof("config version %d applied (%s): codecs %v, limits %d rooms x %d participants",
		cfg.Version, cfg.Hash, next.WebRTC.Codecs, next.Limits.MaxRooms, next.Limits.MaxParticipantsPerRoom)
	ref := cfg.Ref()
	s.mu.Lock()
	sockets := make([]*peer, 0, len(s.sockets))
	for p := range s.sockets {
		sockets = append(sockets, p)
	}
	s.mu.Unlock()
	for _, p := range sockets {
		p.send(map[string]any{"type": "config", "config": ref})
	}
	return nil
}

// reloadSecrets re-reads the applied config's secret files (secrets-reload).
func (s *sfu) reloadSecrets(_ context.Context, _ *sfuconfig.Config) error {
	rt := s.rt.Load()
	if rt == nil {
		return sfuconfig.ApplyFailed("", "no config applied")
	}
	next, err := rt.withSecrets(s.secretsDir)
	if err != nil {
		return err
	}
	s.rt.Store(next)
	return nil
}

// startHTTP starts the HTTP server once (the first config's port, or --port).
func (s *sfu) startHTTP(port int) error {
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	if s.http != nil {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	{
		mux := http.NewServeMux()
		mux.HandleFunc("/ws", s.serveSignalling)
		mux.HandleFunc("/status", s.serveStatus)
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if s.client.Current() == nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		mux.Handle("/", http.FileServer(http.Dir(s.web)))
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.addr = ln.Addr()
		// The first line tests and operators look for.
		fmt.Printf("pion-sfu: listening on http://%s\n", ln.Addr())
		srv := s.http
		go func() { _ = srv.Serve(ln) }()
	}
	return nil
}

func (s *sfu) shutdown() {
	s.httpMu.Lock()
	srv := s.http
	s.httpMu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	s.mu.Lock()
	peers := make([]*peer, 0, len(s.sockets))
	for p := range s.sockets {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		_ = p.ws.Close()
		if p.pc != nil {
			_ = p.pc.Close()
		}
	}
}
