package sfuconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Subprotocol is the WebSocket subprotocol of sfu-config/1.
const Subprotocol = "sfu-config.v1"

// FeatureSecretsReload is the hello feature of PROTOCOL.md section 18.2.
const FeatureSecretsReload = "secrets-reload"

// DefaultSecretsDir is where secret files must lie unless Options.SecretsDir says otherwise.
const DefaultSecretsDir = "/etc/sfu/secrets"

// Options configure a [Client]. URL, Name, Version and Apply are required.
type Options struct {
	// URL of the agent, e.g. "ws://127.0.0.1:7070".
	URL string
	// Token is sent as "Authorization: Bearer <token>" when not empty
	// (see [ReadTokenFile]). It is never logged.
	Token string
	// Name and Version identify the SFU in hello (1..256 characters each).
	Name, Version string
	// SchemaVersions the SFU can apply; default [1, 2].
	SchemaVersions []int
	// SecretsDir is the directory secret files must lie under; default
	// DefaultSecretsDir.
	SecretsDir string
	// Apply applies a config that passed every check of PROTOCOL.md section
	// 6 (schema version, hash, schema and semantic rules). It runs on the
	// client's goroutine, one config at a time, and must apply all of cfg
	// or nothing. nil: ack; a *NackError: nack with its code; any other
	// error: nack APPLY_FAILED. [Client.Current] still returns the previous
	// config while Apply runs, and cfg once it returned nil.
	Apply func(ctx context.Context, cfg *Config) error
	// ReloadSecrets, when set, advertises "secrets-reload": it re-reads the
	// secret files of cfg (the applied config) and takes them in, or returns
	// an error (a *NackError, or any error = APPLY_FAILED) and keeps what it
	// read before.
	ReloadSecrets func(ctx context.Context, cfg *Config) error
	// Health, when true, sends call-health frames (PROTOCOL.md section 15)
	// to an agent that advertises them; count with [Client.Health].
	Health bool
	// Logf receives one line per event (connections, applies, errors);
	// default: discard. Lines never hold the token or a credential.
	Logf func(format string, args ...any)
	// Random returns a number in [0, 1) for the backoff jitter; default math/rand.
	Random func() float64
}

// Client keeps one SFU's config in step with its agent. Create it with
// [New], run it with [Client.Run]; read the applied config, lock-free, with
// [Client.Current].
type Client struct {
	opts      Options
	current   atomic.Pointer[Config]
	health    *Health
	logf      func(string, ...any)
	connected atomic.Bool
}

// Connected reports whether a connection to the agent is open now.
func (c *Client) Connected() bool { return c.connected.Load() }

// New checks opts and returns a client; nothing is dialed yet.
func New(opts Options) (*Client, error) {
	if !strings.HasPrefix(opts.URL, "ws://") && !strings.HasPrefix(opts.URL, "wss://") {
		return nil, fmt.Errorf("sfuconfig: Options.URL must be a ws:// URL, got %q", opts.URL)
	}
	if n := utf8.RuneCountInString(opts.Name); n < 1 || n > 256 {
		return nil, errors.New("sfuconfig: Options.Name must be 1..256 characters")
	}
	if n := utf8.RuneCountInString(opts.Version); n < 1 || n > 256 {
		return nil, errors.New("sfuconfig: Options.Version must be 1..256 characters")
	}
	if opts.Apply == nil {
		return nil, errors.New("sfuconfig: Options.Apply is required")
	}
	if len(opts.SchemaVersions) == 0 {
		opts.SchemaVersions = []int{1, 2}
	}
	for _, v := range opts.SchemaVersions {
		if v != 1 && v != 2 {
			return nil, fmt.Errorf("sfuconfig: schema version %d is not one this package decodes (1, 2)", v)
		}
	}
	if opts.SecretsDir == "" {
		opts.SecretsDir = DefaultSecretsDir
	}
	if opts.Random == nil {
		opts.Random = rand.Float64
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Client{opts: opts, health: newHealth(), logf: logf}, nil
}

// ReadTokenFile reads a bearer token file, trimmed of surrounding whitespace.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return token, nil
}

// Current returns the config in force, or nil before the first one was
// applied. It is one atomic load: call it on the media path as often as
// needed. The returned Config must not be modified.
func (c *Client) Current() *Config { return c.current.Load() }

// Health returns the call-health counters the client reports.
func (c *Client) Health() *Health { return c.health }

// Backoff returns the delay before re-dial attempt n (0-based):
// min(30 s, 0.5 s x 2^n) times r in [0.5, 1] (PROTOCOL.md section 3).
func Backoff(n int, r float64) time.Duration {
	base := 30 * time.Second
	if n < 6 {
		base = time.Duration(float64(500*time.Millisecond) * math.Pow(2, float64(n)))
	}
	return time.Duration(float64(base) * (0.5 + 0.5*r))
}

// Run dials the agent at once, then keeps a connection open, re-dialling
// with [Backoff] after every close or failed attempt, until ctx is done
// (then it closes with 1000 and returns nil). Losing the agent never
// changes the applied config.
func (c *Client) Run(ctx context.Context) error {
	n := 0
	for {
		opened, err := c.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if opened {
			n = 0
		}
		delay := Backoff(n, c.opts.Random())
		n++
		c.logf("%v; re-dialling in %d ms", err, delay.Milliseconds())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// RunOnce makes one connection: dial, hello, then answer configs until the
// connection ends. It returns a *DialError when the dial failed, a
// *ProtocolError after a protocol violation, nil when ctx was cancelled,
// or the error that ended the connection.
func (c *Client) RunOnce(ctx context.Context) error {
	_, err := c.runOnce(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type session struct {
	c           *Client
	conn        *websocket.Conn
	writeMu     sync.Mutex
	lastNonce   int64
	sendsHealth bool
	closed      bool
	healthKick  chan struct{}
}

func (c *Client) runOnce(ctx context.Context) (opened bool, err error) {
	header := http.Header{}
	if c.opts.Token != "" {
		header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{Subprotocol}}
	conn, resp, err := dialer.DialContext(ctx, c.opts.URL, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
			resp.Body.Close()
		}
		return false, &DialError{Status: status, Err: err}
	}
	if conn.Subprotocol() != Subprotocol {
		conn.UnderlyingConn().Close()
		return false, &DialError{Status: resp.StatusCode, Err: fmt.Errorf("the server did not select subprotocol %s: not an sfu-config agent", Subprotocol)}
	}
	conn.SetReadLimit(libraryReadLimit)
	s := &session{c: c, conn: conn, healthKick: make(chan struct{}, 1)}
	s.sendsHealth = c.opts.Health && hasToken(resp.Header.Get("sfu-config-features"), "health")
	c.logf("sfu-config: connected to %s", c.opts.URL)
	c.connected.Store(true)
	defer c.connected.Store(false)

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.closeWith(CloseNormal, "SFU stopping")
		case <-done:
		}
	}()
	if err := s.sendHello(); err != nil {
		conn.Close()
		return true, err
	}
	if s.sendsHealth {
		go s.healthLoop(done)
		if c.Current() != nil {
			s.kickHealth()
		}
	}
	err = s.readLoop(ctx)
	conn.Close()
	return true, err
}

func hasToken(list, token string) bool {
	for _, t := range strings.Split(list, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

func (s *session) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed {
		return errors.New("connection closed")
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// closeWith sends a close frame (reason cut to 123 bytes) and stops writing.
func (s *session) closeWith(code int, reason string) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for len(reason) > 123 {
		reason = reason[:len(reason)-1]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(2*time.Second))
	// Let the peer answer the close; the read loop then ends.
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
}

type appliedJSON = *Applied

func (s *session) appliedRef() appliedJSON {
	cur := s.c.Current()
	if cur == nil {
		return nil
	}
	ref := cur.Ref()
	return &ref
}

func (s *session) sendHello() error {
	hello := map[string]any{
		"type":           "hello",
		"protocol":       1,
		"sfu":            map[string]string{"name": s.c.opts.Name, "version": s.c.opts.Version},
		"schemaVersions": s.c.opts.SchemaVersions,
		"applied":        s.appliedRef(),
	}
	if s.c.opts.ReloadSecrets != nil {
		hello["features"] = []string{FeatureSecretsReload}
	}
	return s.write(hello)
}

var hashPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// violation closes the connection with code and returns the matching error.
func (s *session) violation(code int, reason string) error {
	s.c.logf("sfu-config: closing with %d: %s", code, reason)
	s.closeWith(code, reason)
	return &ProtocolError{Code: code, Reason: reason}
}

func (s *session) readLoop(ctx context.Context) error {
	for {
		kind, data, err := s.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				if s.closed {
					return &ProtocolError{Code: ce.Code, Reason: "closed after our close frame"}
				}
				return &ProtocolError{Code: ce.Code, Reason: ce.Text, ByAgent: true}
			}
			if errors.Is(err, websocket.ErrReadLimit) {
				return s.violation(CloseTooBig, "frame larger than the read limit")
			}
			return fmt.Errorf("connection lost: %w", err)
		}
		if s.closed {
			continue
		}
		if len(data) > MaxFrameBytes {
			return s.violation(CloseFrameTooLarge, fmt.Sprintf("frame of %d bytes exceeds %d", len(data), MaxFrameBytes))
		}
		if kind != websocket.TextMessage {
			return s.violation(CloseBadJSON, "binary frames are not allowed")
		}
		if !utf8.Valid(data) {
			return s.violation(1007, "frame is not valid UTF-8")
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return s.violation(CloseBadJSON, "frame is not JSON")
		}
		if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
			return s.violation(CloseBadJSON, "frame is not one JSON value")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return s.violation(CloseInvalidMessage, "frame is not a JSON object")
		}
		typ, _ := m["type"].(string)
		switch {
		case typ == "config":
			err = s.onConfig(ctx, m, data)
		case typ == "secrets-reload" && s.c.opts.ReloadSecrets != nil:
			err = s.onSecretsReload(ctx, m)
		default:
			t := describe(m["type"])
			if len(t) > 40 {
				t = t[:40]
			}
			return s.violation(CloseUnknownType, "unknown message type "+t)
		}
		if err != nil {
			return err
		}
	}
}

const maxSafe = int64(maxSafeInteger)

// envelope checks the fields every agent->SFU message shares (4003 on failure).
func (s *session) envelope(m map[string]any) (nonce, version int64, hash string, problem string) {
	var ok bool
	if nonce, ok = intValue(m["nonce"], 1, maxSafe); !ok {
		return 0, 0, "", "nonce must be an integer >= 1"
	}
	if version, ok = intValue(m["version"], 1, maxSafe); !ok {
		return 0, 0, "", "version must be an integer >= 1"
	}
	if hash, ok = m["hash"].(string); !ok || !hashPattern.MatchString(hash) {
		return 0, 0, "", "hash must be sha256:<64 lowercase hex>"
	}
	return nonce, version, hash, ""
}

func (s *session) checkNonce(nonce int64) error {
	if nonce <= s.lastNonce {
		return s.violation(CloseBadNonce, fmt.Sprintf("nonce %d did not increase (last %d)", nonce, s.lastNonce))
	}
	s.lastNonce = nonce
	return nil
}

func (s *session) onConfig(ctx context.Context, m map[string]any, frame []byte) error {
	nonce, version, hash, problem := s.envelope(m)
	if problem != "" {
		return s.violation(CloseInvalidMessage, "config: "+problem)
	}
	schemaVersion, ok := intValue(m["schemaVersion"], 1, maxSafe)
	if !ok {
		return s.violation(CloseInvalidMessage, "config: schemaVersion must be an integer >= 1")
	}
	revision := ""
	switch r := m["revision"].(type) {
	case string:
		if n := utf8.RuneCountInString(r); n < 1 || n > 256 {
			return s.violation(CloseInvalidMessage, "config: revision must be 1..256 characters or null")
		}
		revision = r
	case nil:
		if _, present := m["revision"]; !present {
			return s.violation(CloseInvalidMessage, "config: revision is required")
		}
	default:
		return s.violation(CloseInvalidMessage, "config: revision must be a string or null")
	}
	if _, isObject := m["config"].(map[string]any); !isObject {
		return s.violation(CloseInvalidMessage, "config: config must be an object")
	}
	if err := s.checkNonce(nonce); err != nil {
		return err
	}
	reply := func(nack *NackError) error {
		if nack == nil {
			return s.write(map[string]any{"type": "ack", "nonce": nonce, "version": version, "hash": hash})
		}
		s.c.logf("sfu-config: nack version %d: %s", version, nack.Error())
		return s.write(nackMessage(nonce, version, hash, s.appliedRef(), nack))
	}
	// Step 1: a schema version we listed, equal to the config's own.
	if !containsInt(s.c.opts.SchemaVersions, int(schemaVersion)) {
		return reply(&NackError{Code: CodeUnsupportedSchema, Message: fmt.Sprintf("schemaVersion %d is not one of %v this SFU supports", schemaVersion, s.c.opts.SchemaVersions)})
	}
	raw, err := rawMember(frame, "config")
	if err != nil {
		return s.violation(CloseInvalidMessage, "config: "+err.Error())
	}
	cfgMap := m["config"].(map[string]any)
	if inner, ok := intValue(cfgMap["schemaVersion"], 1, maxSafe); !ok || inner != schemaVersion {
		return reply(InvalidConfig("/schemaVersion", fmt.Sprintf("config.schemaVersion %s differs from the message's schemaVersion %d", describe(cfgMap["schemaVersion"]), schemaVersion)))
	}
	// Step 2: the hash, over the config as received.
	canonical, err := CanonicalJSONText(raw)
	if err != nil {
		return reply(InvalidConfig("", err.Error()))
	}
	if got := HashCanonical(canonical); got != hash {
		return reply(InvalidConfig("", fmt.Sprintf("hash mismatch: the message says %s, the config hashes to %s", hash, got)))
	}
	// Step 2a: already applied: ack, adopt the version, touch nothing.
	if cur := s.c.Current(); cur != nil && cur.Hash == hash {
		next := *cur
		next.Version, next.Revision = version, revision
		s.c.current.Store(&next)
		return reply(nil)
	}
	// Step 3: schema and semantic rules.
	cfg, problems := DecodeConfig(canonical, s.c.opts.SecretsDir)
	if len(problems) > 0 {
		texts := make([]string, len(problems))
		for i, p := range problems {
			texts[i] = p.String()
		}
		return reply(InvalidConfig(problems[0].Pointer, strings.Join(texts, "; ")))
	}
	cfg.Version, cfg.Hash, cfg.Revision = version, hash, revision
	// Step 4: apply.
	if err := s.c.opts.Apply(ctx, cfg); err != nil {
		return reply(asNack(err))
	}
	s.c.current.Store(cfg)
	s.c.health.reset(hash, time.Now())
	s.c.logf("sfu-config: applied version %d %s", version, hash)
	if err := reply(nil); err != nil {
		return err
	}
	if s.sendsHealth {
		s.kickHealth()
	}
	return nil
}

func (s *session) onSecretsReload(ctx context.Context, m map[string]any) error {
	nonce, version, hash, problem := s.envelope(m)
	if problem == "" {
		if _, ok := intValue(m["generation"], 1, maxSafe); !ok {
			problem = "generation must be an integer >= 1"
		}
	}
	if problem != "" {
		return s.violation(CloseInvalidMessage, "secrets-reload: "+problem)
	}
	if err := s.checkNonce(nonce); err != nil {
		return err
	}
	cur := s.c.Current()
	var nack *NackError
	switch {
	case cur == nil || cur.Hash != hash || cur.Version != version:
		applied := "nothing"
		if cur != nil {
			applied = fmt.Sprintf("version %d %s", cur.Version, cur.Hash)
		}
		nack = ApplyFailed("", fmt.Sprintf("secrets-reload names version %d %s, but the SFU runs %s; nothing changed", version, hash, applied))
	default:
		if err := s.c.opts.ReloadSecrets(ctx, cur); err != nil {
			nack = asNack(err)
		}
	}
	if nack != nil {
		s.c.logf("sfu-config: secrets-reload nacked: %s", nack.Error())
		return s.write(nackMessage(nonce, version, hash, s.appliedRef(), nack))
	}
	s.c.logf("sfu-config: secrets reloaded for version %d", version)
	return s.write(map[string]any{"type": "ack", "nonce": nonce, "version": version, "hash": hash})
}

func asNack(err error) *NackError {
	var nack *NackError
	if errors.As(err, &nack) {
		out := *nack
		if out.Code == "" {
			out.Code = CodeApplyFailed
		}
		if out.Message == "" {
			out.Message = "refused"
		}
		return &out
	}
	return ApplyFailed("", err.Error())
}

func nackMessage(nonce, version int64, hash string, applied appliedJSON, nack *NackError) map[string]any {
	msg := nack.Message
	if utf8.RuneCountInString(msg) > maxErrorMessageChars {
		msg = string([]rune(msg)[:maxErrorMessageChars-1]) + "…"
	}
	code := nack.Code
	if len(code) > 64 {
		code = code[:64]
	}
	e := map[string]any{"code": code, "message": msg}
	if nack.Path != "" && len(nack.Path) <= 1024 {
		e["path"] = nack.Path
	}
	return map[string]any{"type": "nack", "nonce": nonce, "version": version, "hash": hash, "applied": applied, "error": e}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// rawMember returns the raw JSON text of member key of the object in frame
// (the config exactly as received, for hashing).
func rawMember(frame []byte, key string) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(frame, &members); err != nil {
		return nil, err
	}
	raw, ok := members[key]
	if !ok {
		return nil, fmt.Errorf("%s is missing", key)
	}
	return raw, nil
}
