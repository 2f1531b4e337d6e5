package sfuconfig

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// protocolBlock returns the fenced block after <!-- marker --> in PROTOCOL.md.
func protocolBlock(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile("../../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\n```[a-z]*\n(.*?)\n```")
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatalf("PROTOCOL.md has no %s block", marker)
	}
	return string(m[1])
}

func TestProtocolVector(t *testing.T) {
	input := protocolBlock(t, "vector:input")
	canonical := protocolBlock(t, "vector:canonical")
	hash := protocolBlock(t, "vector:hash")
	for _, trap := range []string{`\b`, `\f`, `<&>`, "\u2028", "\u2029", `\u0001`} {
		if !strings.Contains(canonical, trap) {
			t.Fatalf("the vector lost its %q trap", trap)
		}
	}
	got, err := CanonicalJSONText([]byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != canonical {
		t.Fatalf("canonical JSON differs:\n got %s\nwant %s", got, canonical)
	}
	if h, err := HashJSON([]byte(input)); err != nil || h != hash {
		t.Fatalf("HashJSON = %s, %v; want %s", h, err, hash)
	}
	// Through a Go value too: encoding/json's escaping must not leak in.
	var v map[string]any
	if err := json.Unmarshal([]byte(input), &v); err != nil {
		t.Fatal(err)
	}
	if h, err := Hash(v); err != nil || h != hash {
		t.Fatalf("Hash(map) = %s, %v; want %s", h, err, hash)
	}
}

func TestWorkedExampleHashOfTypedConfig(t *testing.T) {
	cfg := ConfigV1{
		SchemaVersion: 1,
		Server:        ServerV1{Port: 8080},
		WebRTC: WebRTCV1{
			IcePortRange: [2]int{20000, 20100}, Codecs: []string{"vp8", "opus"},
			ListenIP: "0.0.0.0", AnnouncedIPs: []string{}, TurnServers: []TurnServerV1{},
		},
		Logging: Logging{Level: "info"},
		Limits:  Limits{MaxRooms: 100, MaxParticipantsPerRoom: 16},
	}
	h, err := Hash(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:ff850be933139c9ff16d7bf8a4f79e750053cc8ba43b111712ebc6e6983d0ec7"; h != want {
		t.Fatalf("Hash = %s, want %s (PROTOCOL.md section 10)", h, want)
	}
}

func TestCanonicalStringTraps(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"html characters raw", `{"a":"<&>"}`, `{"a":"<&>"}`},
		{"html characters from escapes", `{"a":"\u003c\u0026\u003e"}`, `{"a":"<&>"}`},
		{"line and paragraph separators raw", `{"a":"\u2028\u2029"}`, "{\"a\":\"\u2028\u2029\"}"},
		{"backspace and form feed short", `{"a":"\u0008\u000c"}`, `{"a":"\b\f"}`},
		{"other controls lowercase hex", `{"a":"\u001F\u007f"}`, "{\"a\":\"\\u001f\u007f\"}"},
		{"escaped backslash before u2028 stays", `{"a":"\\u2028"}`, `{"a":"\\u2028"}`},
		{"slash raw", `{"a":"\/"}`, `{"a":"/"}`},
		{"astral from surrogate pair", `{"a":"\ud83d\ude00"}`, `{"a":"😀"}`},
		{"keys by UTF-16 code units", `{"￿":1,"😀":2,"a":3,"B":4}`, `{"B":4,"a":3,"😀":2,"￿":1}`},
		{"integral numbers", `{"a":[1.0,1e2,-0,-7,65535]}`, `{"a":[1,100,0,-7,65535]}`},
		{"whitespace dropped", "{ \"b\" : [ true , null ] ,\n \"a\" : { } }", `{"a":{},"b":[true,null]}`},
	}
	for _, c := range cases {
		got, err := CanonicalJSONText([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestCanonicalRefusals(t *testing.T) {
	for _, in := range []string{
		`{"a":1.5}`, `{"a":9007199254740992}`, `{"a":"\ud800"}`, `{"a":"\udc00x"}`, `{"a":"\ud800\u0041"}`,
		`{"a":1} x`, "{\"a\":\"\xff\"}", `{"a":`,
	} {
		if _, err := HashJSON([]byte(in)); err == nil {
			t.Errorf("HashJSON(%s) succeeded; want an error", in)
		}
	}
	// A Go string holding the six characters \u2028 is not a separator.
	h1, _ := Hash(map[string]string{"a": `\u2028`})
	h2, _ := Hash(map[string]string{"a": "\u2028"})
	if h1 == h2 {
		t.Fatal(`the literal text \u2028 and U+2028 hash the same`)
	}
}
