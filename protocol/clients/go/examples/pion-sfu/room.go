package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// trackInfo is a published track as other participants see it.
type trackInfo struct {
	ID            string `json:"id"`
	ParticipantID string `json:"participantId"`
	Kind          string `json:"kind"`
	Codec         string `json:"codec"`
}

// published is one track a participant publishes, fanned out to the others.
type published struct {
	info   trackInfo
	owner  *peer
	local  *webrtc.TrackLocalStaticRTP
	remote *webrtc.TrackRemote
	mu     sync.Mutex
	lastPL time.Time
}

// requestKeyframe asks the publisher for a keyframe, at most every 500 ms.
func (p *published) requestKeyframe() {
	p.mu.Lock()
	if time.Since(p.lastPL) < 500*time.Millisecond {
		p.mu.Unlock()
		return
	}
	p.lastPL = time.Now()
	p.mu.Unlock()
	_ = p.owner.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(p.remote.SSRC())}})
}

// room holds its participants; the SFU's mutex guards it.
type room struct {
	name  string
	peers map[string]*peer
}

// peer is one participant: its signalling socket and its peer connection,
// created under the runtime (config) in force when it joined.
type peer struct {
	sfu  *sfu
	id   string
	name string
	room *room
	rt   *runtime
	ws   *websocket.Conn
	wmu  sync.Mutex
	pc   *webrtc.PeerConnection

	mu          sync.Mutex // negotiation state below, and subs/tracks
	negotiating bool
	pending     bool
	publishTx   map[*webrtc.RTPTransceiver]string // recvonly transceivers -> kind
	subs        map[*published]*webrtc.RTPSender
	tracks      []*published
	gathered    bool
	answered    bool
	iceCounted  bool
	closed      bool
}

func (p *peer) send(msg any) {
	b, err := json.Marshal(msg)
	if err != nil {
		return
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = p.ws.WriteMessage(websocket.TextMessage, b)
}

func (p *peer) sendError(code, message string) {
	p.send(map[string]string{"type": "error", "code": code, "message": message})
}

func codecName(mime string) string {
	i := strings.IndexByte(mime, '/')
	return strings.ToLower(mime[i+1:])
}

func (p *peer) info() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	tracks := make([]trackInfo, 0, len(p.tracks))
	for _, t := range p.tracks {
		tracks = append(tracks, t.info)
	}
	return map[string]any{"id": p.id, "name": p.name, "tracks": tracks}
}

// negotiate sends one offer at a time; changes made while an offer is out
// are folded into the next one (sent when the answer arrives).
func (p *peer) negotiate() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if p.negotiating {
		p.pending = true
		p.mu.Unlock()
		return
	}
	p.negotiating = true
	p.mu.Unlock()
	if err := p.offer(); err != nil {
		p.sfu.log.warnf("participant %s: negotiation failed: %v", p.id, err)
		p.sendError("NEGOTIATION_FAILED", err.Error())
		p.mu.Lock()
		p.negotiating = false
		p.mu.Unlock()
	}
}

func (p *peer) offer() error {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	p.mu.Lock()
	first := !p.gathered
	p.gathered = true
	p.mu.Unlock()
	if first {
		// No trickle from the SFU: the first offer carries its candidates.
		select {
		case <-gathered:
		case <-time.After(3 * time.Second):
		}
	}
	publish := []map[string]string{}
	tracks := map[string]trackInfo{}
	p.mu.Lock()
	for _, t := range p.pc.GetTransceivers() {
		if kind, ok := p.publishTx[t]; ok && t.Mid() != "" {
			publish = append(publish, map[string]string{"mid": t.Mid(), "kind": kind})
		}
		for pub, sender := range p.subs {
			if t.Sender() == sender && t.Mid() != "" {
				tracks[t.Mid()] = pub.info
			}
		}
	}
	p.mu.Unlock()
	p.send(map[string]any{"type": "offer", "sdp": p.pc.LocalDescription().SDP, "publish": publish, "tracks": tracks})
	return nil
}

func (p *peer) onAnswer(sdp string) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		p.sendError("NEGOTIATION_FAILED", err.Error())
		return
	}
	p.mu.Lock()
	first := !p.answered
	p.answered = true
	p.negotiating = false
	again := p.pending
	p.pending = false
	p.mu.Unlock()
	if first {
		// PROTOCOL.md section 15: not connected within 10 s of the first answer is an ICE failure.
		time.AfterFunc(10*time.Second, func() { p.countICE(false) })
	}
	if again {
		p.negotiate()
	}
}

// countICE counts this participant's ICE outcome once, for the hash it joined under.
func (p *peer) countICE(connected bool) {
	p.mu.Lock()
	done := p.iceCounted
	p.iceCounted = true
	p.mu.Unlock()
	if done {
		return
	}
	if connected {
		p.sfu.client.Health().ICEConnected(p.rt.cfg.Hash)
	} else {
		p.sfu.client.Health().ICEFailure(p.rt.cfg.Hash)
	}
}

// subscribe adds pub to p's peer connection (one new sendonly m-line).
// Not AddTrack: pion's AddTrack reuses a transceiver of the same kind
// without a sender, which would be p's own recvonly publish m-line.
func (p *peer) subscribe(pub *published) {
	tx, err := p.pc.AddTransceiverFromTrack(pub.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		p.sfu.log.warnf("participant %s cannot receive %s (%s): %v", p.id, pub.info.ID, pub.info.Codec, err)
		return
	}
	sender := tx.Sender()
	p.mu.Lock()
	p.subs[pub] = sender
	p.mu.Unlock()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := sender.Read(buf)
			if err != nil {
				return
			}
			packets, err := rtcp.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			for _, pkt := range packets {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					pub.requestKeyframe()
				}
			}
		}
	}()
}

// unsubscribe stops the m-line carrying pub; reports whether anything changed.
func (p *peer) unsubscribe(pub *published) bool {
	p.mu.Lock()
	sender, ok := p.subs[pub]
	delete(p.subs, pub)
	p.mu.Unlock()
	if !ok {
		return false
	}
	return p.pc.RemoveTrack(sender) == nil
}

// onTrack runs when the participant's media arrives: it becomes a published
// track forwarded to everyone else in the room.
func (p *peer) onTrack(remote *webrtc.TrackRemote) {
	kind := remote.Kind().String()
	local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, p.id+"-"+kind, p.id)
	if err != nil {
		p.sfu.log.warnf("participant %s: %v", p.id, err)
		return
	}
	pub := &published{
		info:   trackInfo{ID: p.id + "-" + kind, ParticipantID: p.id, Kind: kind, Codec: codecName(remote.Codec().MimeType)},
		owner:  p,
		local:  local,
		remote: remote,
	}
	p.mu.Lock()
	p.tracks = append(p.tracks, pub)
	p.mu.Unlock()
	others := p.sfu.roomPeers(p.room, p)
	for _, o := range others {
		o.send(map[string]any{"type": "track-published", "track": pub.info})
		o.subscribe(pub)
		o.negotiate()
	}
	if kind == "video" {
		pub.requestKeyframe()
	}
	for {
		pkt, _, err := remote.ReadRTP()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.sfu.log.debugf("participant %s %s: %v", p.id, kind, err)
			}
			return
		}
		if err := local.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
		p.sfu.forwarded.Add(1)
	}
}

func (p *peer) String() string { return fmt.Sprintf("%s (%s)", p.id, p.name) }
