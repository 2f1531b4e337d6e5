package sfuconfig

import (
	"sync"
	"time"
)

// Health holds the call-health counters of PROTOCOL.md section 15 for the
// applied config hash. They restart from zero when a config with another
// hash is applied. Each method takes the hash the participant's peer
// connection was created under and counts only when it is the applied
// hash, so calls set up under an earlier config never count for a new one.
// Safe for concurrent use.
type Health struct {
	mu      sync.Mutex
	hash    string
	since   time.Time
	counts  HealthCounts
	changed bool
}

// HealthCounts are the four counters of a health frame.
type HealthCounts struct {
	Joins        int64 `json:"joins"`
	JoinFailures int64 `json:"joinFailures"`
	ICEConnected int64 `json:"iceConnected"`
	ICEFailures  int64 `json:"iceFailures"`
}

// HealthReport is a health frame without its type: the counters of Hash since Since.
type HealthReport struct {
	Hash  string `json:"hash"`
	Since string `json:"since"`
	HealthCounts
}

func newHealth() *Health { return &Health{} }

func (h *Health) reset(hash string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hash == hash {
		return
	}
	h.hash, h.since, h.counts, h.changed = hash, now, HealthCounts{}, true
}

func (h *Health) add(hash string, f func(*HealthCounts)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hash == "" || hash != h.hash {
		return
	}
	f(&h.counts)
	h.changed = true
}

// Join counts a join handled (admitted or refused).
func (h *Health) Join(hash string) { h.add(hash, func(c *HealthCounts) { c.Joins++ }) }

// JoinFailure counts a join refused (limits) or failed before connecting.
func (h *Health) JoinFailure(hash string) { h.add(hash, func(c *HealthCounts) { c.JoinFailures++ }) }

// ICEConnected counts a peer connection that reached connected.
func (h *Health) ICEConnected(hash string) { h.add(hash, func(c *HealthCounts) { c.ICEConnected++ }) }

// ICEFailure counts a peer connection whose ICE failed, or that was not
// connected within 10 s of the client's first answer.
func (h *Health) ICEFailure(hash string) { h.add(hash, func(c *HealthCounts) { c.ICEFailures++ }) }

// Report returns the current counters, or false before any config was applied.
func (h *Health) Report() (HealthReport, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hash == "" {
		return HealthReport{}, false
	}
	return HealthReport{Hash: h.hash, Since: h.since.UTC().Format("2006-01-02T15:04:05.000Z"), HealthCounts: h.counts}, true
}

func (h *Health) takeChanged() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.changed
	h.changed = false
	return c
}

// healthMinInterval is the shortest gap between two periodic health frames.
const healthMinInterval = 5 * time.Second

func (s *session) kickHealth() {
	select {
	case s.healthKick <- struct{}{}:
	default:
	}
}

// healthLoop sends a frame at once when kicked (after hello, after a new
// hash is applied) and otherwise at most every 5 s while a counter changed.
func (s *session) healthLoop(done <-chan struct{}) {
	ticker := time.NewTicker(healthMinInterval)
	defer ticker.Stop()
	send := func() {
		report, ok := s.c.health.Report()
		if !ok {
			return
		}
		s.c.health.takeChanged()
		_ = s.write(map[string]any{
			"type": "health", "hash": report.Hash, "since": report.Since,
			"joins": report.Joins, "joinFailures": report.JoinFailures,
			"iceConnected": report.ICEConnected, "iceFailures": report.ICEFailures,
		})
	}
	for {
		select {
		case <-done:
			return
		case <-s.healthKick:
			send()
		case <-ticker.C:
			if s.c.health.takeChanged() {
				send()
			}
		}
	}
}
