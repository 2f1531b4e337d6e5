package sfuconfig

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeAgent is a minimal agent side for unit tests: each upgrade is handed
// to the test on conns; it checks what every SFU must send on upgrade.
type fakeAgent struct {
	t        *testing.T
	server   *httptest.Server
	conns    chan *agentConn
	selectSP bool
}

type agentConn struct {
	ws     *websocket.Conn
	header http.Header
}

func newFakeAgent(t *testing.T, selectSubprotocol bool) *fakeAgent {
	a := &fakeAgent{t: t, conns: make(chan *agentConn, 4), selectSP: selectSubprotocol}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	if selectSubprotocol {
		up.Subprotocols = []string{Subprotocol}
	}
	a.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, http.Header{"sfu-config-features": {"health"}})
		if err != nil {
			return
		}
		a.conns <- &agentConn{ws: ws, header: r.Header}
	}))
	t.Cleanup(a.server.Close)
	return a
}

func (a *fakeAgent) url() string { return "ws" + strings.TrimPrefix(a.server.URL, "http") }

func (a *fakeAgent) next(t *testing.T) *agentConn {
	t.Helper()
	select {
	case c := <-a.conns:
		t.Cleanup(func() { c.ws.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not dial")
		return nil
	}
}

func (c *agentConn) read(t *testing.T) map[string]any {
	t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("agent read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("not JSON: %s", data)
		}
		if m["type"] != "health" {
			return m
		}
	}
}

func (c *agentConn) pushConfig(t *testing.T, nonce, version int, raw string, hash string) {
	t.Helper()
	if hash == "" {
		var err error
		if hash, err = HashJSON([]byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	var sv struct {
		SchemaVersion float64 `json:"schemaVersion"`
	}
	_ = json.Unmarshal([]byte(raw), &sv)
	msg := `{"type":"config","nonce":` + itoa(nonce) + `,"version":` + itoa(version) + `,"hash":"` + hash +
		`","revision":null,"schemaVersion":` + itoa(int(sv.SchemaVersion)) + `,"config":` + raw + `}`
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func startClient(t *testing.T, opts Options) (*Client, context.CancelFunc) {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, cancel
}

func TestClientHelloAckNackAndRedial(t *testing.T) {
	agent := newFakeAgent(t, true)
	var applied []string
	var client *Client
	client, _ = startClient(t, Options{
		URL: agent.url(), Token: "tok-1", Name: "unit-sfu", Version: "1.2.3",
		Apply: func(_ context.Context, cfg *Config) error {
			if cur := client.Current(); cur != nil && cur.V1.Server.Port != cfg.V1.Server.Port {
				return RestartRequired("/server/port", "server.port needs a restart")
			}
			applied = append(applied, cfg.Hash)
			return nil
		},
		ReloadSecrets: func(context.Context, *Config) error { return errors.New("EACCES") },
		Health:        true,
	})
	conn := agent.next(t)
	if got := conn.header.Get("Authorization"); got != "Bearer tok-1" {
		t.Fatalf("Authorization = %q", got)
	}
	if conn.header.Get("Origin") != "" {
		t.Fatal("the client sent an Origin header")
	}
	hello := conn.read(t)
	if hello["type"] != "hello" || hello["protocol"] != 1.0 || hello["applied"] != nil {
		t.Fatalf("hello = %v", hello)
	}
	if sv, _ := json.Marshal(hello["schemaVersions"]); string(sv) != "[1,2]" {
		t.Fatalf("schemaVersions = %s", sv)
	}
	if f, _ := json.Marshal(hello["features"]); string(f) != `["secrets-reload"]` {
		t.Fatalf("features = %s", f)
	}

	// A valid config, sent pretty-printed with keys reordered: acked.
	pretty := strings.Replace(validV1, `"schemaVersion":1,`, "\n  ", 1)
	pretty = strings.Replace(pretty, `{`, `{"schemaVersion" : 1.0,`, 1)
	conn.pushConfig(t, 1, 7, pretty, "")
	ack := conn.read(t)
	wantHash, _ := HashJSON([]byte(validV1))
	if ack["type"] != "ack" || ack["nonce"] != 1.0 || ack["version"] != 7.0 || ack["hash"] != wantHash {
		t.Fatalf("reply = %v", ack)
	}
	if cur := client.Current(); cur == nil || cur.Hash != wantHash || cur.Version != 7 {
		t.Fatalf("Current = %+v", cur)
	}

	// A port change: the Apply callback's RestartRequired becomes the nack.
	portChange := strings.Replace(validV1, `"port":8080`, `"port":9090`, 1)
	conn.pushConfig(t, 3, 8, portChange, "")
	nack := conn.read(t)
	e, _ := nack["error"].(map[string]any)
	ap, _ := nack["applied"].(map[string]any)
	if nack["type"] != "nack" || nack["nonce"] != 3.0 || e["code"] != CodeRestartRequired || e["path"] != "/server/port" || ap["hash"] != wantHash {
		t.Fatalf("reply = %v", nack)
	}

	// A wrong hash is INVALID_CONFIG, Apply never sees it.
	conn.pushConfig(t, 4, 9, portChange, wantHash)
	nack = conn.read(t)
	e, _ = nack["error"].(map[string]any)
	if e["code"] != CodeInvalidConfig || !strings.Contains(e["message"].(string), "hash mismatch") {
		t.Fatalf("reply = %v", nack)
	}
	// An unsupported schema version.
	conn.pushConfig(t, 5, 10, strings.Replace(validV1, `"schemaVersion":1`, `"schemaVersion":3`, 1), "")
	nack = conn.read(t)
	if e, _ = nack["error"].(map[string]any); e["code"] != CodeUnsupportedSchema {
		t.Fatalf("reply = %v", nack)
	}
	// secrets-reload: the callback's plain error is APPLY_FAILED.
	_ = conn.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"secrets-reload","nonce":6,"version":7,"hash":"`+wantHash+`","generation":1}`))
	nack = conn.read(t)
	if e, _ = nack["error"].(map[string]any); nack["type"] != "nack" || e["code"] != CodeApplyFailed || e["message"] != "EACCES" {
		t.Fatalf("reply = %v", nack)
	}
	if len(applied) != 1 {
		t.Fatalf("applied %v", applied)
	}

	// A nonce that did not increase: closed 4004, then a re-dial whose hello reports version 7.
	conn.pushConfig(t, 6, 11, validV1, "")
	_ = conn.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := conn.ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != CloseBadNonce {
				t.Fatalf("close = %v, want 4004", err)
			}
			break
		}
	}
	again := agent.next(t)
	hello = again.read(t)
	if a, _ := hello["applied"].(map[string]any); a["hash"] != wantHash || a["version"] != 7.0 {
		t.Fatalf("hello after re-dial = %v", hello)
	}
}

func TestClientRefusesServerWithoutSubprotocol(t *testing.T) {
	agent := newFakeAgent(t, false)
	c, err := New(Options{URL: agent.url(), Name: "x", Version: "1", Apply: func(context.Context, *Config) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	err = c.RunOnce(context.Background())
	var de *DialError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "did not select subprotocol") {
		t.Fatalf("RunOnce = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
		if lo, hi := Backoff(n, 0), Backoff(n, 1); lo != want/2 || hi != want {
			t.Errorf("Backoff(%d) in [%v, %v], want [%v, %v]", n, lo, hi, want/2, want)
		}
	}
	if Backoff(40, 1) != 30*time.Second {
		t.Error("the backoff is not capped at 30 s")
	}
}
