package sfuconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Hash returns the config hash of PROTOCOL.md section 8,
// "sha256:" followed by 64 lowercase hex digits, of config: any value
// encoding/json can marshal (a ConfigV1, a ConfigV2, a map, or a
// json.RawMessage holding the config as received).
//
// It does not post-process encoding/json's output: the value is reduced to
// plain JSON data and written by this package's own canonical encoder, so
// HTML escaping, U+2028/U+2029 and Go's pre-1.22 \u0008/\u000c never
// reach the hash. Numbers must be integers (1.0 and 1e0 count as 1), as in
// every valid config; any other number is an error.
func Hash(config any) (string, error) {
	canonical, err := CanonicalJSON(config)
	if err != nil {
		return "", err
	}
	return HashCanonical(canonical), nil
}

// HashJSON is [Hash] over raw JSON text (the config object exactly as
// received). The text must be well-formed UTF-8 JSON whose strings hold no
// unpaired UTF-16 surrogate escape: such a string cannot hash the same in
// every language (PROTOCOL.md section 8, "Limits").
func HashJSON(raw []byte) (string, error) {
	canonical, err := CanonicalJSONText(raw)
	if err != nil {
		return "", err
	}
	return HashCanonical(canonical), nil
}

// HashCanonical returns "sha256:<hex>" of already canonical JSON bytes.
func HashCanonical(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CanonicalJSON returns the canonical JSON of PROTOCOL.md section 8 for v:
// no whitespace, object members sorted by UTF-16 code units, strings as
// ECMAScript JSON.stringify writes them, integers in plain decimal.
func CanonicalJSON(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return CanonicalJSONText(raw)
	}
	if raw, ok := v.([]byte); ok {
		return CanonicalJSONText(raw)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical JSON: %w", err)
	}
	return CanonicalJSONText(raw)
}

// CanonicalJSONText is [CanonicalJSON] over JSON text.
func CanonicalJSONText(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, &CanonicalError{Reason: "the JSON text is not valid UTF-8"}
	}
	if err := checkSurrogates(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var value any
	if err := dec.Decode(&value); err != nil {
		return nil, &CanonicalError{Reason: "not JSON: " + err.Error()}
	}
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) != 0 {
		return nil, &CanonicalError{Reason: "trailing data after the JSON value"}
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := writeCanonical(&buf, value, ""); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CanonicalError says why a value has no canonical JSON (and so no hash).
type CanonicalError struct {
	// Path is the JSON pointer of the offending value ("" for the whole text).
	Path string
	// Reason is a human-readable explanation.
	Reason string
}

func (e *CanonicalError) Error() string {
	if e.Path == "" {
		return "canonical JSON: " + e.Reason
	}
	return "canonical JSON: " + e.Path + ": " + e.Reason
}

func writeCanonical(buf *bytes.Buffer, v any, path string) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case string:
		writeString(buf, x)
	case json.Number:
		s, err := canonicalInteger(x)
		if err != nil {
			return &CanonicalError{Path: path, Reason: err.Error()}
		}
		buf.WriteString(s)
	case []any:
		buf.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, item, path+"/"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := writeCanonical(buf, x[k], path+"/"+escapePointer(k)); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return &CanonicalError{Path: path, Reason: fmt.Sprintf("unexpected %T", v)}
	}
	return nil
}

// maxSafeInteger is 2^53-1, the largest integer every JSON reader keeps exact.
const maxSafeInteger = 1<<53 - 1

// canonicalInteger writes a JSON number that denotes an integer (1, -7,
// 1.0, 1e3) in plain decimal; anything else is an error.
func canonicalInteger(n json.Number) (string, error) {
	s := string(n)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i > maxSafeInteger || i < -maxSafeInteger {
			return "", fmt.Errorf("integer %s is outside the safe range ±(2^53-1)", s)
		}
		return strconv.FormatInt(i, 10), nil
	}
	f, ok := new(big.Float).SetPrec(200).SetString(s)
	if !ok {
		return "", fmt.Errorf("number %s is not valid", s)
	}
	if !f.IsInt() {
		return "", fmt.Errorf("number %s is not an integer (a valid config holds integers only)", s)
	}
	i, _ := f.Int(nil)
	if i.CmpAbs(big.NewInt(maxSafeInteger)) > 0 {
		return "", fmt.Errorf("integer %s is outside the safe range ±(2^53-1)", s)
	}
	return i.String(), nil
}

// intValue reads a JSON number that must be an integer in [min, max].
func intValue(v any, min, max int64) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	s, err := canonicalInteger(n)
	if err != nil {
		return 0, false
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || i < min || i > max {
		return 0, false
	}
	return i, true
}

const hexDigits = "0123456789abcdef"

// writeString writes s as ECMAScript JSON.stringify does: only '"', '\\'
// and the controls below U+0020 are escaped (\b \t \n \f \r short, the rest
// \u00xx lowercase); everything else, U+2028/U+2029 and <>& included, raw.
func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf.WriteString(s[start:i])
		switch c {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\t':
			buf.WriteString(`\t`)
		case '\n':
			buf.WriteString(`\n`)
		case '\f':
			buf.WriteString(`\f`)
		case '\r':
			buf.WriteString(`\r`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hexDigits[c>>4])
			buf.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

// lessUTF16 orders strings by their UTF-16 code units, as JavaScript's sort does.
func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	var b bytes.Buffer
	for _, r := range k {
		switch r {
		case '~':
			b.WriteString("~0")
		case '/':
			b.WriteString("~1")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkSurrogates refuses JSON text whose strings hold an unpaired UTF-16
// surrogate escape (Go's decoder would silently turn it into U+FFFD).
func checkSurrogates(raw []byte) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(raw) {
				return nil // the decoder reports the truncation
			}
			if raw[i+1] != 'u' {
				i++
				continue
			}
			u, ok := hex4(raw, i+2)
			if !ok {
				return nil // the decoder reports the bad escape
			}
			i += 5
			switch {
			case u >= 0xD800 && u <= 0xDBFF:
				lo, ok := -1, false
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					var v int
					v, ok = hex4(raw, i+3)
					lo = v
				}
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return &CanonicalError{Reason: fmt.Sprintf("a string holds an unpaired UTF-16 surrogate \\u%04x", u)}
				}
				i += 6
			case u >= 0xDC00 && u <= 0xDFFF:
				return &CanonicalError{Reason: fmt.Sprintf("a string holds an unpaired UTF-16 surrogate \\u%04x", u)}
			}
		}
	}
	return nil
}

func hex4(raw []byte, at int) (int, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(raw[at:at+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return int(v), true
}
