package sfuconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validV1 = `{"schemaVersion":1,"server":{"port":8080},"webrtc":{"icePortRange":[20000,20100],"codecs":["vp8","opus"],"listenIp":"0.0.0.0","announcedIps":[],"turnServers":[{"urls":["turn:turn.example.com:3478?transport=udp"],"username":"sfu","credentialFile":"/etc/sfu/secrets/turn"}]},"logging":{"level":"info"},"limits":{"maxRooms":100,"maxParticipantsPerRoom":16}}`

func TestDecodeConfigV1(t *testing.T) {
	cfg, problems := DecodeConfig([]byte(validV1), DefaultSecretsDir)
	if problems != nil {
		t.Fatal(problems)
	}
	if cfg.V1 == nil || cfg.V2 != nil || cfg.V1.Server.Port != 8080 || cfg.V1.WebRTC.TurnServers[0].CredentialFile != "/etc/sfu/secrets/turn" {
		t.Fatalf("decoded %+v", cfg)
	}
	v2 := cfg.AsV2()
	if v2.Server.Port != 8080 || len(v2.Server.AllowedOrigins) != 0 || v2.WebRTC.TurnServers[0].Username != "sfu" {
		t.Fatalf("AsV2 = %+v", v2)
	}
}

func TestDecodeConfigProblems(t *testing.T) {
	cases := []struct{ name, from, to, pointer, text string }{
		{"unknown key", `"logging":{"level":"info"}`, `"logging":{"level":"info","colour":true}`, "/logging/colour", "unknown key"},
		{"v2 key in v1", `"server":{"port":8080}`, `"server":{"port":8080,"allowedOrigins":[]}`, "/server/allowedOrigins", "unknown key"},
		{"port range", `"port":8080`, `"port":70000`, "/server/port", "1..65535"},
		{"fractional port", `"port":8080`, `"port":8080.5`, "", "not an integer"},
		{"ice range order", `[20000,20100]`, `[20100,20000]`, "/webrtc/icePortRange", "less than"},
		{"no audio codec", `["vp8","opus"]`, `["vp8"]`, "/webrtc/codecs", "audio"},
		{"unknown codec", `["vp8","opus"]`, `["vp8","opus","mp3"]`, "/webrtc/codecs/2", "not one of"},
		{"listen ip", `"0.0.0.0"`, `"localhost"`, "/webrtc/listenIp", "IPv4 or IPv6"},
		{"turn url", `turn:turn.example.com:3478?transport=udp`, `http://turn.example.com`, "/webrtc/turnServers/0/urls/0", "turn:"},
		{"secret outside dir", `/etc/sfu/secrets/turn`, `/etc/passwd`, "/webrtc/turnServers/0/credentialFile", "not under"},
		{"dot dot", `/etc/sfu/secrets/turn`, `/etc/sfu/secrets/../passwd`, "/webrtc/turnServers/0/credentialFile", ".."},
		{"log level", `"level":"info"`, `"level":"loud"`, "/logging/level", "one of"},
		{"missing server", `"server":{"port":8080},`, ``, "/server", "required"},
	}
	for _, c := range cases {
		raw := strings.Replace(validV1, c.from, c.to, 1)
		if raw == validV1 {
			t.Fatalf("%s: replacement did not apply", c.name)
		}
		_, problems := DecodeConfig([]byte(raw), DefaultSecretsDir)
		if len(problems) == 0 {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if problems[0].Pointer != c.pointer || !strings.Contains(problems[0].Message, c.text) {
			t.Errorf("%s: first problem %q, want pointer %q containing %q", c.name, problems[0], c.pointer, c.text)
		}
	}
}

func TestDecodeConfigV2(t *testing.T) {
	raw := `{"schemaVersion":2,"server":{"port":8080,"allowedOrigins":["https://app.example.com"]},"webrtc":{"icePortRange":[20000,20100],"codecs":["vp8","opus"],"listenIp":"0.0.0.0","announcedIps":[],"turnServers":[{"urls":["turn:turn.example.com:3478?transport=udp"],"authSecretFile":"/etc/sfu/secrets/turn-auth-secret","credentialTtl":3600}]},"logging":{"level":"info"},"limits":{"maxRooms":100,"maxParticipantsPerRoom":16}}`
	cfg, problems := DecodeConfig([]byte(raw), DefaultSecretsDir)
	if problems != nil {
		t.Fatal(problems)
	}
	if cfg.V2.Server.AllowedOrigins[0] != "https://app.example.com" || cfg.V2.WebRTC.TurnServers[0].CredentialTTL != 3600 {
		t.Fatalf("decoded %+v", cfg.V2)
	}
	bad := strings.Replace(raw, `"https://app.example.com"`, `"https://App.example.com:443/"`, 1)
	if _, problems := DecodeConfig([]byte(bad), DefaultSecretsDir); len(problems) == 0 || problems[0].Pointer != "/server/allowedOrigins/0" {
		t.Fatalf("bad origin: %v", problems)
	}
	mixed := strings.Replace(raw, `"credentialTtl":3600`, `"credentialTtl":3600,"username":"x"`, 1)
	if _, problems := DecodeConfig([]byte(mixed), DefaultSecretsDir); len(problems) == 0 || problems[0].Pointer != "/webrtc/turnServers/0/authSecretFile" {
		t.Fatalf("authSecretFile with username: %v", problems)
	}
}

func TestResolveSecretFile(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(filepath.Join(secrets, "..data"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(secrets, "..data", "s"), []byte("x"), 0o600)
	_ = os.Symlink("..data/s", filepath.Join(secrets, "s"))
	_ = os.WriteFile(filepath.Join(dir, "outside"), []byte("x"), 0o600)
	_ = os.Symlink("../outside", filepath.Join(secrets, "escape"))
	if _, err := ResolveSecretFile(filepath.Join(secrets, "s"), secrets); err != nil {
		t.Fatalf("kubelet-style link refused: %v", err)
	}
	if _, err := ResolveSecretFile(filepath.Join(secrets, "escape"), secrets); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("escaping link: %v", err)
	}
}
