package sfuconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ConfigV1 is a normalised schemaVersion 1 config (PROTOCOL.md section 13).
// Every field is present in a pushed config: the agent fills in defaults.
type ConfigV1 struct {
	SchemaVersion int      `json:"schemaVersion"`
	Server        ServerV1 `json:"server"`
	WebRTC        WebRTCV1 `json:"webrtc"`
	Logging       Logging  `json:"logging"`
	Limits        Limits   `json:"limits"`
}

// ServerV1 is the server section of schema v1.
type ServerV1 struct {
	// Port is the HTTP/signalling port; it cannot change while running.
	Port int `json:"port"`
}

// WebRTCV1 is the webrtc section of schema v1.
type WebRTCV1 struct {
	// IcePortRange is [min, max] of the UDP ports ICE may use.
	IcePortRange [2]int `json:"icePortRange"`
	// Codecs in preference order: vp8, vp9, h264, av1, opus, pcmu, pcma.
	Codecs []string `json:"codecs"`
	// ListenIP is the interface ICE gathers on ("0.0.0.0" = all).
	ListenIP string `json:"listenIp"`
	// AnnouncedIPs are advertised as host candidates (NAT 1:1).
	AnnouncedIPs []string `json:"announcedIps"`
	// TurnServers are handed to clients as iceServers.
	TurnServers []TurnServerV1 `json:"turnServers"`
}

// TurnServerV1 is a TURN/STUN server of schema v1.
type TurnServerV1 struct {
	URLs           []string `json:"urls"`
	Username       string   `json:"username,omitempty"`
	CredentialFile string   `json:"credentialFile,omitempty"`
	// Credential is an inline credential: never log it.
	Credential string `json:"credential,omitempty"`
}

// Logging is the logging section.
type Logging struct {
	// Level is one of trace, debug, info, warn, error, fatal.
	Level string `json:"level"`
}

// Limits is the limits section (admission limits).
type Limits struct {
	MaxRooms               int `json:"maxRooms"`
	MaxParticipantsPerRoom int `json:"maxParticipantsPerRoom"`
}

// ConfigV2 is a normalised schemaVersion 2 config (PROTOCOL.md section 16):
// v1 plus server.allowedOrigins and TURN REST credentials.
type ConfigV2 struct {
	SchemaVersion int      `json:"schemaVersion"`
	Server        ServerV2 `json:"server"`
	WebRTC        WebRTCV2 `json:"webrtc"`
	Logging       Logging  `json:"logging"`
	Limits        Limits   `json:"limits"`
}

// ServerV2 is the server section of schema v2.
type ServerV2 struct {
	Port int `json:"port"`
	// AllowedOrigins may open the signalling WebSocket; empty = same origin only.
	AllowedOrigins []string `json:"allowedOrigins"`
}

// WebRTCV2 is the webrtc section of schema v2.
type WebRTCV2 struct {
	IcePortRange [2]int         `json:"icePortRange"`
	Codecs       []string       `json:"codecs"`
	ListenIP     string         `json:"listenIp"`
	AnnouncedIPs []string       `json:"announcedIps"`
	TurnServers  []TurnServerV2 `json:"turnServers"`
}

// TurnServerV2 is a TURN/STUN server of schema v2.
type TurnServerV2 struct {
	URLs           []string `json:"urls"`
	Username       string   `json:"username,omitempty"`
	CredentialFile string   `json:"credentialFile,omitempty"`
	// Credential is an inline credential: never log it.
	Credential string `json:"credential,omitempty"`
	// AuthSecretFile holds the TURN REST shared secret: never log its content.
	AuthSecretFile string `json:"authSecretFile,omitempty"`
	// CredentialTTL is the lifetime of a minted credential in seconds.
	CredentialTTL int `json:"credentialTtl,omitempty"`
}

// Config is one config as the agent pushed it: its identity, the typed
// content (V1 or V2 by SchemaVersion) and the raw JSON it was hashed from.
// A Config is immutable once passed to Apply: share it freely.
type Config struct {
	// Version is the agent's number for this config (status and logs only).
	Version int64
	// Hash is "sha256:<hex>" of the canonical JSON of the config.
	Hash string
	// Revision is the Git revision it came from, "" when unknown.
	Revision string
	// SchemaVersion is 1 or 2.
	SchemaVersion int
	// V1 is set when SchemaVersion is 1.
	V1 *ConfigV1
	// V2 is set when SchemaVersion is 2.
	V2 *ConfigV2
	// Canonical is the canonical JSON of the config (what Hash hashes).
	Canonical json.RawMessage
}

// Applied names the config in force: {version, hash} on the wire.
type Applied struct {
	Version int64  `json:"version"`
	Hash    string `json:"hash"`
}

// Ref returns the {version, hash} of c.
func (c *Config) Ref() Applied { return Applied{Version: c.Version, Hash: c.Hash} }

// AsV2 returns the config in the v2 shape whatever its schema version (a v1
// config has no allowed origins and no TURN REST secrets), so an SFU can
// read one type. The slices are copies.
func (c *Config) AsV2() ConfigV2 {
	if c.V2 != nil {
		v := *c.V2
		v.Server.AllowedOrigins = append([]string(nil), v.Server.AllowedOrigins...)
		v.WebRTC.Codecs = append([]string(nil), v.WebRTC.Codecs...)
		v.WebRTC.AnnouncedIPs = append([]string(nil), v.WebRTC.AnnouncedIPs...)
		v.WebRTC.TurnServers = append([]TurnServerV2(nil), v.WebRTC.TurnServers...)
		return v
	}
	v1 := c.V1
	out := ConfigV2{
		SchemaVersion: 1,
		Server:        ServerV2{Port: v1.Server.Port, AllowedOrigins: []string{}},
		WebRTC: WebRTCV2{
			IcePortRange: v1.WebRTC.IcePortRange,
			Codecs:       append([]string(nil), v1.WebRTC.Codecs...),
			ListenIP:     v1.WebRTC.ListenIP,
			AnnouncedIPs: append([]string(nil), v1.WebRTC.AnnouncedIPs...),
		},
		Logging: v1.Logging,
		Limits:  v1.Limits,
	}
	for _, t := range v1.WebRTC.TurnServers {
		out.WebRTC.TurnServers = append(out.WebRTC.TurnServers, TurnServerV2{
			URLs: t.URLs, Username: t.Username, CredentialFile: t.CredentialFile, Credential: t.Credential,
		})
	}
	return out
}

// Problem is one validation problem: a JSON pointer into the config and a text.
type Problem struct {
	Pointer string
	Message string
}

func (p Problem) String() string { return p.Pointer + ": " + p.Message }

var (
	videoCodecs = map[string]bool{"vp8": true, "vp9": true, "h264": true, "av1": true}
	audioCodecs = map[string]bool{"opus": true, "pcmu": true, "pcma": true}
	logLevels   = map[string]bool{"trace": true, "debug": true, "info": true, "warn": true, "error": true, "fatal": true}
	iceURL      = regexp.MustCompile(`^(turns?|stuns?):(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?(\?transport=(udp|tcp))?$`)
	originRe    = regexp.MustCompile(`^https?://[a-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?$`)
)

// DecodeConfig strictly decodes a config object (JSON text) of schema
// version 1 or 2 into a typed Config and checks it against the schema and
// the semantic rules of PROTOCOL.md sections 13 and 16. secretsDir is the
// directory every credentialFile/authSecretFile must lie strictly under
// ("" skips that check). Files are not read. On failure it returns the
// problems found, the first one first (its pointer is the nack's path).
func DecodeConfig(raw []byte, secretsDir string) (*Config, []Problem) {
	canonical, err := CanonicalJSONText(raw)
	if err != nil {
		return nil, []Problem{{Pointer: "", Message: err.Error()}}
	}
	var tree map[string]any
	dec := json.NewDecoder(bytes.NewReader(canonical))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil || tree == nil {
		return nil, []Problem{{Pointer: "", Message: "the config must be a JSON object"}}
	}
	sv, ok := intValue(tree["schemaVersion"], 1, 2)
	if !ok {
		return nil, []Problem{{Pointer: "/schemaVersion", Message: fmt.Sprintf("must be 1 or 2, got %s", describe(tree["schemaVersion"]))}}
	}
	v := &validator{tree: tree, secretsDir: secretsDir, v2: sv == 2}
	v.check()
	if len(v.problems) > 0 {
		return nil, v.problems
	}
	cfg := &Config{SchemaVersion: int(sv), Canonical: canonical}
	strict := json.NewDecoder(bytes.NewReader(canonical))
	strict.DisallowUnknownFields()
	if sv == 1 {
		cfg.V1 = new(ConfigV1)
		err = strict.Decode(cfg.V1)
	} else {
		cfg.V2 = new(ConfigV2)
		err = strict.Decode(cfg.V2)
	}
	if err != nil {
		return nil, []Problem{{Pointer: "", Message: "does not match the schema: " + err.Error()}}
	}
	return cfg, nil
}

type validator struct {
	tree       map[string]any
	secretsDir string
	v2         bool
	problems   []Problem
}

func (v *validator) add(pointer, format string, args ...any) {
	if len(v.problems) < 100 {
		v.problems = append(v.problems, Problem{Pointer: pointer, Message: fmt.Sprintf(format, args...)})
	}
}

func describe(x any) string {
	if x == nil {
		return "nothing"
	}
	b, _ := json.Marshal(x)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	return string(b)
}

// object checks that parent[key] is an object with only the allowed keys.
func (v *validator) object(parent map[string]any, key, pointer string, required bool, allowed ...string) map[string]any {
	x, present := parent[key]
	if !present {
		if required {
			v.add(pointer, "is required")
		}
		return nil
	}
	m, ok := x.(map[string]any)
	if !ok {
		v.add(pointer, "must be an object")
		return nil
	}
	v.onlyKeys(m, pointer, allowed...)
	return m
}

func (v *validator) onlyKeys(m map[string]any, pointer string, allowed ...string) {
	ok := map[string]bool{}
	for _, k := range allowed {
		ok[k] = true
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !ok[k] {
			v.add(pointer+"/"+escapePointer(k), "is not allowed (unknown key)")
		}
	}
}

func (v *validator) integer(m map[string]any, key, pointer string, required bool, min, max int64) {
	x, present := m[key]
	if !present {
		if required {
			v.add(pointer, "is required")
		}
		return
	}
	if _, ok := intValue(x, min, max); !ok {
		v.add(pointer, "must be an integer %d..%d, got %s", min, max, describe(x))
	}
}

func (v *validator) str(m map[string]any, key, pointer string, minLen, maxLen int) (string, bool) {
	x, present := m[key]
	if !present {
		return "", false
	}
	s, ok := x.(string)
	if !ok || len([]rune(s)) < minLen || len([]rune(s)) > maxLen {
		v.add(pointer, "must be a string of %d..%d characters", minLen, maxLen)
		return "", false
	}
	return s, true
}

func (v *validator) strings(m map[string]any, key, pointer string, unique bool, minItems, maxItems int) ([]string, bool) {
	x, present := m[key]
	if !present {
		return nil, false
	}
	arr, ok := x.([]any)
	if !ok || len(arr) < minItems || len(arr) > maxItems {
		v.add(pointer, "must be an array of %d..%d strings", minItems, maxItems)
		return nil, false
	}
	out := make([]string, 0, len(arr))
	seen := map[string]bool{}
	for i, item := range arr {
		s, ok := item.(string)
		if !ok {
			v.add(pointer+"/"+strconv.Itoa(i), "must be a string")
			return nil, false
		}
		if unique && seen[s] {
			v.add(pointer+"/"+strconv.Itoa(i), "duplicates an earlier item %q", s)
			return nil, false
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, true
}

func (v *validator) check() {
	t := v.tree
	v.onlyKeys(t, "", "schemaVersion", "server", "webrtc", "logging", "limits")
	serverKeys := []string{"port"}
	if v.v2 {
		serverKeys = append(serverKeys, "allowedOrigins")
	}
	if server := v.object(t, "server", "/server", true, serverKeys...); server != nil {
		v.integer(server, "port", "/server/port", true, 1, 65535)
		if v.v2 {
			if origins, ok := v.strings(server, "allowedOrigins", "/server/allowedOrigins", true, 0, 100); ok {
				for i, o := range origins {
					if !validOrigin(o) {
						v.add("/server/allowedOrigins/"+strconv.Itoa(i), "%q is not a serialised origin scheme://host[:port] (lower case, no path, no default port)", o)
					}
				}
			}
		}
	}
	if w := v.object(t, "webrtc", "/webrtc", true, "icePortRange", "codecs", "listenIp", "announcedIps", "turnServers"); w != nil {
		v.checkWebRTC(w)
	}
	if l := v.object(t, "logging", "/logging", false, "level"); l != nil {
		if x, present := l["level"]; present {
			if s, ok := x.(string); !ok || !logLevels[s] {
				v.add("/logging/level", "must be one of trace, debug, info, warn, error, fatal, got %s", describe(x))
			}
		}
	}
	if l := v.object(t, "limits", "/limits", false, "maxRooms", "maxParticipantsPerRoom"); l != nil {
		v.integer(l, "maxRooms", "/limits/maxRooms", false, 1, 100000)
		v.integer(l, "maxParticipantsPerRoom", "/limits/maxParticipantsPerRoom", false, 1, 10000)
	}
}

func (v *validator) checkWebRTC(w map[string]any) {
	if x, present := w["icePortRange"]; !present {
		v.add("/webrtc/icePortRange", "is required")
	} else if arr, ok := x.([]any); !ok || len(arr) != 2 {
		v.add("/webrtc/icePortRange", "must be [min, max]")
	} else {
		lo, ok1 := intValue(arr[0], 1024, 65535)
		hi, ok2 := intValue(arr[1], 1024, 65535)
		switch {
		case !ok1:
			v.add("/webrtc/icePortRange/0", "must be an integer 1024..65535")
		case !ok2:
			v.add("/webrtc/icePortRange/1", "must be an integer 1024..65535")
		case lo >= hi:
			v.add("/webrtc/icePortRange", "min %d must be less than max %d", lo, hi)
		}
	}
	if _, present := w["codecs"]; !present {
		v.add("/webrtc/codecs", "is required")
	} else if codecs, ok := v.strings(w, "codecs", "/webrtc/codecs", true, 1, 7); ok {
		audio, video := false, false
		for i, c := range codecs {
			switch {
			case audioCodecs[c]:
				audio = true
			case videoCodecs[c]:
				video = true
			default:
				v.add("/webrtc/codecs/"+strconv.Itoa(i), "%q is not one of vp8, vp9, h264, av1, opus, pcmu, pcma", c)
			}
		}
		if !audio {
			v.add("/webrtc/codecs", "needs at least one audio codec (opus, pcmu, pcma)")
		}
		if !video {
			v.add("/webrtc/codecs", "needs at least one video codec (vp8, vp9, h264, av1)")
		}
	}
	if s, ok := v.str(w, "listenIp", "/webrtc/listenIp", 1, 64); ok && net.ParseIP(s) == nil {
		v.add("/webrtc/listenIp", "%q is not an IPv4 or IPv6 literal", s)
	}
	if ips, ok := v.strings(w, "announcedIps", "/webrtc/announcedIps", true, 0, 1000); ok {
		for i, s := range ips {
			if net.ParseIP(s) == nil {
				v.add("/webrtc/announcedIps/"+strconv.Itoa(i), "%q is not an IPv4 or IPv6 literal", s)
			}
		}
	}
	x, present := w["turnServers"]
	if !present {
		return
	}
	arr, ok := x.([]any)
	if !ok {
		v.add("/webrtc/turnServers", "must be an array")
		return
	}
	for i, item := range arr {
		v.checkTurn(item, "/webrtc/turnServers/"+strconv.Itoa(i))
	}
}

func (v *validator) checkTurn(item any, base string) {
	keys := []string{"urls", "username", "credentialFile", "credential"}
	if v.v2 {
		keys = append(keys, "authSecretFile", "credentialTtl")
	}
	m, ok := item.(map[string]any)
	if !ok {
		v.add(base, "must be an object")
		return
	}
	v.onlyKeys(m, base, keys...)
	urls, ok := v.strings(m, "urls", base+"/urls", false, 1, 100)
	if _, present := m["urls"]; !present {
		v.add(base+"/urls", "is required")
	}
	turn := false
	for j, u := range urls {
		if err := checkICEURL(u); err != "" {
			v.add(base+"/urls/"+strconv.Itoa(j), "%s", err)
		}
		if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
			turn = true
		}
	}
	_ = ok
	_, hasUser := v.str(m, "username", base+"/username", 1, 512)
	credFile, hasCredFile := v.str(m, "credentialFile", base+"/credentialFile", 1, 4096)
	_, hasCred := v.str(m, "credential", base+"/credential", 1, 4096)
	authFile, hasAuth := "", false
	if v.v2 {
		authFile, hasAuth = v.str(m, "authSecretFile", base+"/authSecretFile", 1, 4096)
		if _, present := m["credentialTtl"]; present {
			v.integer(m, "credentialTtl", base+"/credentialTtl", false, 60, 86400)
			if !hasAuth {
				v.add(base+"/credentialTtl", "only with authSecretFile")
			}
		}
	}
	if hasCred && hasCredFile {
		v.add(base+"/credential", "give either credential or credentialFile, not both")
	}
	if hasAuth && (hasUser || hasCred || hasCredFile) {
		v.add(base+"/authSecretFile", "not together with username, credential or credentialFile")
	}
	if turn && !hasAuth && (!hasUser || !(hasCred || hasCredFile)) {
		if v.v2 {
			v.add(base, "a turn:/turns: server needs authSecretFile, or username and credentialFile (or credential)")
		} else {
			v.add(base, "a turn:/turns: server needs username and credentialFile (or credential)")
		}
	}
	if hasCredFile {
		if err := checkSecretPath(credFile, v.secretsDir); err != "" {
			v.add(base+"/credentialFile", "%s", err)
		}
	}
	if hasAuth {
		if err := checkSecretPath(authFile, v.secretsDir); err != "" {
			v.add(base+"/authSecretFile", "%s", err)
		}
	}
}

func checkICEURL(u string) string {
	m := iceURL.FindStringSubmatch(u)
	if m == nil {
		return fmt.Sprintf("%q is not a turn:, turns:, stun: or stuns: URI host[:port][?transport=udp|tcp]", u)
	}
	if m[4] != "" {
		if p, _ := strconv.Atoi(m[4]); p < 1 || p > 65535 {
			return fmt.Sprintf("%q has a port outside 1..65535", u)
		}
	}
	if m[5] != "" && strings.HasPrefix(m[1], "stun") {
		return fmt.Sprintf("%q: ?transport is only for turn:/turns:", u)
	}
	return ""
}

func validOrigin(o string) bool {
	if !originRe.MatchString(o) {
		return false
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		return false
	}
	if port != "" {
		if p, _ := strconv.Atoi(port); p < 1 || p > 65535 {
			return false
		}
	}
	return true
}

// checkSecretPath checks the shape of a secret file path (PROTOCOL.md
// section 18.1, first two rules): no ".." segment, strictly under dir.
func checkSecretPath(path, dir string) string {
	for _, seg := range strings.Split(filepath.ToSlash(path), "/") {
		if seg == ".." {
			return fmt.Sprintf("%q has a .. segment", path)
		}
	}
	if dir == "" {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Sprintf("%q cannot be resolved", path)
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Sprintf("secrets directory %q cannot be resolved", dir)
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || outside(rel) {
		return fmt.Sprintf("%q is not under the secrets directory %s", path, root)
	}
	return ""
}

// ResolveSecretFile resolves every symlink of a secret file path and checks
// that the file still lies under dir's own resolved path (PROTOCOL.md
// section 18.1, third rule), returning the resolved path to read.
func ResolveSecretFile(path, dir string) (string, error) {
	if msg := checkSecretPath(path, dir); msg != "" {
		return "", fmt.Errorf("%s", msg)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	if dir == "" {
		return real, nil
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(root, real)
	if err != nil || outside(rel) {
		return "", fmt.Errorf("%q resolves outside the secrets directory %s", path, root)
	}
	return real, nil
}

// outside reports whether a filepath.Rel result leaves its base (or is it).
func outside(rel string) bool {
	return rel == "." || rel == ".." || strings.HasPrefix(rel, "../")
}
