package sfuconfig

import "fmt"

// NACK codes of PROTOCOL.md section 6.
const (
	CodeInvalidConfig     = "INVALID_CONFIG"
	CodeUnsupportedSchema = "UNSUPPORTED_SCHEMA"
	CodeRestartRequired   = "RESTART_REQUIRED"
	CodeApplyFailed       = "APPLY_FAILED"
)

// NackError is an error an Apply or ReloadSecrets callback returns to have
// the config refused with a specific code; the client sends it as the nack's
// error. Any other error becomes APPLY_FAILED with err.Error() as message.
// Messages go to the agent and its status: never put a credential in one.
type NackError struct {
	// Code is upper case: one of the Code constants or an SFU-specific one.
	Code string
	// Message is human-readable, at most 8192 characters (longer is cut).
	Message string
	// Path is an optional JSON pointer into the config, e.g. "/server/port".
	Path string
}

func (e *NackError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("%s: %s (at %s)", e.Code, e.Message, e.Path)
	}
	return e.Code + ": " + e.Message
}

// RestartRequired returns a NackError for a valid config that changes a
// field which cannot change while running (nothing was applied).
func RestartRequired(path, message string) *NackError {
	return &NackError{Code: CodeRestartRequired, Message: message, Path: path}
}

// ApplyFailed returns a NackError for a failure outside the config's
// validity (a file that cannot be read, a resource limit); the agent retries
// such a config with backoff.
func ApplyFailed(path, message string) *NackError {
	return &NackError{Code: CodeApplyFailed, Message: message, Path: path}
}

// InvalidConfig returns a NackError for a config the SFU finds invalid
// beyond the checks this package already made.
func InvalidConfig(path, message string) *NackError {
	return &NackError{Code: CodeInvalidConfig, Message: message, Path: path}
}

// ProtocolError is returned by [Client.RunOnce] when the connection ended
// because of a protocol violation; Code is the WebSocket close code sent
// (4001 BAD_JSON, 4002 UNKNOWN_TYPE, 4003 INVALID_MESSAGE, 4004 BAD_NONCE,
// 4009 FRAME_TOO_LARGE) or received.
type ProtocolError struct {
	Code   int
	Reason string
	// ByAgent is true when the agent closed the connection.
	ByAgent bool
}

func (e *ProtocolError) Error() string {
	who := "closed"
	if e.ByAgent {
		who = "agent closed"
	}
	return fmt.Sprintf("sfu-config: %s the connection with %d: %s", who, e.Code, e.Reason)
}

// DialError is returned by [Client.RunOnce] when the connection could not be
// opened (refused, HTTP 401/403/426/503, no subprotocol selected).
type DialError struct {
	// Status is the HTTP status of a refused upgrade, 0 when none was received.
	Status int
	Err    error
}

func (e *DialError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("sfu-config: dial refused with HTTP %d: %v", e.Status, e.Err)
	}
	return fmt.Sprintf("sfu-config: dial failed: %v", e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// Close codes of PROTOCOL.md section 7.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseTooBig          = 1009
	CloseProtocolError   = 4000
	CloseBadJSON         = 4001
	CloseUnknownType     = 4002
	CloseInvalidMessage  = 4003
	CloseBadNonce        = 4004
	CloseFrameTooLarge   = 4009
	MaxFrameBytes        = 1 << 20
	libraryReadLimit     = 2 << 20
	maxErrorMessageChars = 8192
)
