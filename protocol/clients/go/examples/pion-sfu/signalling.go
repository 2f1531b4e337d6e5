package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v3"
)

// maxSignalFrame is the largest signalling frame accepted from a client.
const maxSignalFrame = 256 * 1024

// originAllowed: no Origin (not a browser), the same origin, or one listed
// in server.allowedOrigins of the applied config (schemaVersion 2).
func originAllowed(r *http.Request, rt *runtime) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host == r.Host {
		return true
	}
	if rt != nil {
		for _, o := range rt.conf.Server.AllowedOrigins {
			if o == origin {
				return true
			}
		}
	}
	return false
}

func (s *sfu) serveStatus(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	rooms, participants := len(s.rooms), 0
	for _, r := range s.rooms {
		participants += len(r.peers)
	}
	s.mu.Unlock()
	status := map[string]any{"applied": nil, "rooms": rooms, "participants": participants,
		"agent": map[string]bool{"connected": s.client.Connected()}, "health": nil,
		"rtpPacketsForwarded": s.forwarded.Load()}
	if cur := s.client.Current(); cur != nil {
		status["applied"] = cur.Ref()
	}
	if report, ok := s.client.Health().Report(); ok {
		status["health"] = report
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(status)
}

var upgrader = websocket.Upgrader{
	// The origin is checked against the applied config before upgrading.
	CheckOrigin: func(*http.Request) bool { return true },
}

func (s *sfu) serveSignalling(w http.ResponseWriter, r *http.Request) {
	if !originAllowed(r, s.rt.Load()) {
		http.Error(w, "origin", http.StatusForbidden)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(maxSignalFrame)
	s.mu.Lock()
	s.nextID++
	p := &peer{sfu: s, id: "p" + strconv.FormatInt(s.nextID, 10) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36), ws: ws,
		publishTx: map[*webrtc.RTPTransceiver]string{}, subs: map[*published]*webrtc.RTPSender{}}
	s.sockets[p] = struct{}{}
	s.mu.Unlock()
	defer s.leave(p)
	var ref any
	if cur := s.client.Current(); cur != nil {
		ref = cur.Ref()
	}
	p.send(map[string]any{"type": "config", "config": ref})
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			p.sendError("BAD_MESSAGE", "frame is not a JSON object")
			continue
		}
		var typ string
		_ = json.Unmarshal(m["type"], &typ)
		switch typ {
		case "join":
			s.join(p, m)
		case "answer":
			var sdp string
			if json.Unmarshal(m["sdp"], &sdp) != nil || sdp == "" || p.pc == nil {
				p.sendError("BAD_MESSAGE", "answer.sdp must be a string, after join")
				continue
			}
			p.onAnswer(sdp)
		case "candidate":
			if p.pc == nil || bytes.Equal(bytes.TrimSpace(m["candidate"]), []byte("null")) || len(m["candidate"]) == 0 {
				continue
			}
			var c webrtc.ICECandidateInit
			if json.Unmarshal(m["candidate"], &c) != nil {
				p.sendError("BAD_MESSAGE", "candidate.candidate must be an RTCIceCandidateInit or null")
				continue
			}
			if c.Candidate != "" {
				_ = p.pc.AddICECandidate(c)
			}
		case "publish":
			if p.pc == nil {
				p.sendError("NOT_JOINED", "join first")
				continue
			}
			var pub struct{ Audio, Video bool }
			_ = json.Unmarshal(m["publish"], &pub)
			p.addPublish(pub.Audio, pub.Video)
			p.negotiate()
		case "leave":
			p.send(map[string]string{"type": "left"})
			return
		default:
			p.sendError("BAD_MESSAGE", fmt.Sprintf("unknown message type %q", typ))
		}
	}
}

func validName(v string) bool {
	n := utf8.RuneCountInString(v)
	return strings.TrimSpace(v) != "" && n <= 64 && !strings.ContainsAny(v, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
}

func (p *peer) addPublish(audio, video bool) {
	p.mu.Lock()
	have := map[string]bool{}
	for _, kind := range p.publishTx {
		have[kind] = true
	}
	p.mu.Unlock()
	for kind, want := range map[string]bool{"audio": audio, "video": video} {
		if !want || have[kind] {
			continue
		}
		k := webrtc.RTPCodecTypeAudio
		if kind == "video" {
			k = webrtc.RTPCodecTypeVideo
		}
		t, err := p.pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		if err != nil {
			p.sfu.log.warnf("participant %s cannot publish %s: %v", p.id, kind, err)
			continue
		}
		p.mu.Lock()
		p.publishTx[t] = kind
		p.mu.Unlock()
	}
}

// join admits p under the runtime in force now: its limits, its codecs, its
// ICE servers. That runtime stays p's for the life of its peer connection.
func (s *sfu) join(p *peer, m map[string]json.RawMessage) {
	if p.pc != nil {
		p.sendError("ALREADY_JOINED", "already joined")
		return
	}
	var req struct {
		Room, Name string
		Publish    *struct{ Audio, Video *bool }
	}
	if json.Unmarshal(mustObject(m), &req) != nil || !validName(req.Room) || !validName(req.Name) {
		p.sendError("BAD_MESSAGE", "join.room and join.name must be 1..64 printable characters")
		return
	}
	rt := s.rt.Load()
	if rt == nil {
		p.sendError("NOT_READY", "no config applied yet")
		return
	}
	health := s.client.Health()
	health.Join(rt.cfg.Hash)
	limits := rt.conf.Limits
	s.mu.Lock()
	r := s.rooms[req.Room]
	if r == nil && len(s.rooms) >= limits.MaxRooms {
		s.mu.Unlock()
		health.JoinFailure(rt.cfg.Hash)
		p.sendError("ROOM_LIMIT", fmt.Sprintf("%d rooms open (limits.maxRooms = %d)", limits.MaxRooms, limits.MaxRooms))
		return
	}
	if r != nil && len(r.peers) >= limits.MaxParticipantsPerRoom {
		s.mu.Unlock()
		health.JoinFailure(rt.cfg.Hash)
		p.sendError("PARTICIPANT_LIMIT", fmt.Sprintf("room %q is full: %d participants (limits.maxParticipantsPerRoom = %d)", req.Room, len(r.peers), limits.MaxParticipantsPerRoom))
		return
	}
	if r == nil {
		r = &room{name: req.Room, peers: map[string]*peer{}}
		s.rooms[req.Room] = r
	}
	s.mu.Unlock()
	pc, err := rt.api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		health.JoinFailure(rt.cfg.Hash)
		p.sendError("NEGOTIATION_FAILED", err.Error())
		s.dropEmptyRoom(r)
		return
	}
	p.pc, p.rt, p.name, p.room = pc, rt, strings.TrimSpace(req.Name), r
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { go p.onTrack(remote) })
	pc.OnConnectionStateChange(func(state webrtc.PeerConnectionState) {
		switch state {
		case webrtc.PeerConnectionStateConnected:
			p.countICE(true)
		case webrtc.PeerConnectionStateFailed:
			p.countICE(false)
		}
	})
	audio, video := true, true
	if req.Publish != nil {
		audio = req.Publish.Audio != nil && *req.Publish.Audio
		video = req.Publish.Video != nil && *req.Publish.Video
	}
	p.addPublish(audio, video)
	s.mu.Lock()
	others := make([]*peer, 0, len(r.peers))
	for _, o := range r.peers {
		others = append(others, o)
	}
	r.peers[p.id] = p
	s.mu.Unlock()
	participants := make([]map[string]any, 0, len(others))
	for _, o := range others {
		participants = append(participants, o.info())
		o.mu.Lock()
		tracks := append([]*published(nil), o.tracks...)
		o.mu.Unlock()
		for _, t := range tracks {
			p.subscribe(t)
			t.requestKeyframe()
		}
	}
	p.send(map[string]any{"type": "joined", "id": p.id, "room": r.name, "iceServers": rt.iceServersFor(p.id, time.Now()),
		"participants": participants, "config": rt.cfg.Ref()})
	for _, o := range others {
		o.send(map[string]any{"type": "participant-joined", "participant": p.info()})
	}
	s.log.infof("participant %s joined room %q under config version %d", p, r.name, rt.cfg.Version)
	p.negotiate()
}

func mustObject(m map[string]json.RawMessage) []byte {
	b, _ := json.Marshal(m)
	return b
}

// roomPeers returns the participants of r other than except.
func (s *sfu) roomPeers(r *room, except *peer) []*peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*peer, 0, len(r.peers))
	for _, o := range r.peers {
		if o != except {
			out = append(out, o)
		}
	}
	return out
}

func (s *sfu) dropEmptyRoom(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.peers) == 0 && s.rooms[r.name] == r {
		delete(s.rooms, r.name)
	}
}

// leave removes p: its socket, its peer connection, its tracks from the others.
func (s *sfu) leave(p *peer) {
	s.mu.Lock()
	delete(s.sockets, p)
	r := p.room
	if r != nil {
		delete(r.peers, p.id)
	}
	s.mu.Unlock()
	_ = p.ws.Close()
	if r == nil {
		return
	}
	s.dropEmptyRoom(r)
	p.mu.Lock()
	p.closed = true
	tracks := append([]*published(nil), p.tracks...)
	p.mu.Unlock()
	if p.pc != nil {
		_ = p.pc.Close()
	}
	for _, o := range s.roomPeers(r, p) {
		changed := false
		for _, t := range tracks {
			if o.unsubscribe(t) {
				changed = true
			}
		}
		o.send(map[string]string{"type": "participant-left", "id": p.id})
		if changed {
			o.negotiate()
		}
	}
	s.log.infof("participant %s left room %q", p, r.name)
}
