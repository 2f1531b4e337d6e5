package main

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v3"
	sfuconfig "github.com/sfu-config/sfu-config/protocol/clients/go"
)

// runtime is everything derived from one applied config: the pion API new
// peer connections are created with, the ICE servers handed to clients, the
// limits and origins. A session keeps the runtime it was created under;
// applying a config swaps the pointer for the sessions that come after.
type runtime struct {
	cfg    *sfuconfig.Config
	conf   sfuconfig.ConfigV2
	api    *webrtc.API
	turn   []turnEntry
	codecs []string
}

// turnEntry is one webrtc.turnServers item with its secret read.
type turnEntry struct {
	urls     []string
	username string
	// credential is the static credential (inline or read from credentialFile).
	credential string
	// authSecret is the TURN REST shared secret (schema v2 authSecretFile); never sent.
	authSecret []byte
	ttl        int
}

// iceServer is one RTCIceServer as the demo page receives it.
type iceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

var codecParams = map[string]webrtc.RTPCodecParameters{
	"vp8":  {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 96},
	"vp9":  {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFeedback}, PayloadType: 98},
	"h264": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFeedback}, PayloadType: 102},
	"av1":  {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: videoFeedback}, PayloadType: 45},
	"opus": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
	"pcmu": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
	"pcma": {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
}

var videoFeedback = []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}

// buildRuntime prepares cfg for new sessions: it reads every secret file
// (a failure is APPLY_FAILED with the field's path) and builds the pion API.
// Nothing is shared with the previous runtime.
func buildRuntime(cfg *sfuconfig.Config, secretsDir string) (*runtime, error) {
	conf := cfg.AsV2()
	rt := &runtime{cfg: cfg, conf: conf, codecs: conf.WebRTC.Codecs}
	var err error
	if rt.turn, err = readTurnSecrets(conf, secretsDir); err != nil {
		return nil, err
	}
	media := &webrtc.MediaEngine{}
	for _, name := range conf.WebRTC.Codecs {
		kind := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(codecParams[name].MimeType, "audio/") {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := media.RegisterCodec(codecParams[name], kind); err != nil {
			return nil, sfuconfig.ApplyFailed("/webrtc/codecs", fmt.Sprintf("codec %s: %v", name, err))
		}
	}
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(media, registry); err != nil {
		return nil, sfuconfig.ApplyFailed("", "interceptors: "+err.Error())
	}
	settings := webrtc.SettingEngine{}
	lo, hi := conf.WebRTC.IcePortRange[0], conf.WebRTC.IcePortRange[1]
	if err := settings.SetEphemeralUDPPortRange(uint16(lo), uint16(hi)); err != nil {
		return nil, sfuconfig.ApplyFailed("/webrtc/icePortRange", err.Error())
	}
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	listen := net.ParseIP(conf.WebRTC.ListenIP)
	if listen != nil && !listen.IsUnspecified() {
		settings.SetIPFilter(func(ip net.IP) bool { return ip.Equal(listen) })
		if listen.IsLoopback() {
			settings.SetIncludeLoopbackCandidate(true)
		}
		if listen.To4() != nil {
			settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		} else {
			settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP6})
		}
	} else {
		settings.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if len(conf.WebRTC.AnnouncedIPs) > 0 {
		settings.SetNAT1To1IPs(conf.WebRTC.AnnouncedIPs, webrtc.ICECandidateTypeHost)
	}
	rt.api = webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(settings))
	return rt, nil
}

// readTurnSecrets reads credentialFile and authSecretFile of every TURN
// server (PROTOCOL.md section 18.1: symlinks resolved, never outside the
// secrets directory). The error names the path, never the content.
func readTurnSecrets(conf sfuconfig.ConfigV2, secretsDir string) ([]turnEntry, error) {
	out := make([]turnEntry, 0, len(conf.WebRTC.TurnServers))
	for i, t := range conf.WebRTC.TurnServers {
		e := turnEntry{urls: t.URLs, username: t.Username, credential: t.Credential, ttl: t.CredentialTTL}
		read := func(field, path string) (string, error) {
			pointer := "/webrtc/turnServers/" + strconv.Itoa(i) + "/" + field
			real, err := sfuconfig.ResolveSecretFile(path, secretsDir)
			if err == nil {
				var b []byte
				if b, err = os.ReadFile(real); err == nil {
					return strings.TrimSpace(string(b)), nil
				}
			}
			return "", sfuconfig.ApplyFailed(pointer, fmt.Sprintf("cannot read %s of TURN server %d (%s): %s", field, i, path, errorKind(err)))
		}
		var err error
		if t.CredentialFile != "" {
			if e.credential, err = read("credentialFile", t.CredentialFile); err != nil {
				return nil, err
			}
		}
		if t.AuthSecretFile != "" {
			var s string
			if s, err = read("authSecretFile", t.AuthSecretFile); err != nil {
				return nil, err
			}
			e.authSecret = []byte(s)
			if e.ttl == 0 {
				e.ttl = 3600
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// errorKind shortens a file error to its cause (ENOENT, EACCES, ...), never content.
func errorKind(err error) string {
	switch {
	case os.IsNotExist(err):
		return "ENOENT"
	case os.IsPermission(err):
		return "EACCES"
	default:
		return err.Error()
	}
}

// iceServersFor returns the ICE servers for one participant: static
// credentials as configured, TURN REST credentials minted for it.
func (rt *runtime) iceServersFor(participant string, now time.Time) []iceServer {
	out := make([]iceServer, 0, len(rt.turn))
	for _, t := range rt.turn {
		s := iceServer{URLs: t.urls, Username: t.username, Credential: t.credential}
		if t.authSecret != nil {
			s.Username = strconv.FormatInt(now.Unix()+int64(t.ttl), 10) + ":" + participant
			mac := hmac.New(sha1.New, t.authSecret)
			mac.Write([]byte(s.Username))
			s.Credential = base64.StdEncoding.EncodeToString(mac.Sum(nil))
		}
		out = append(out, s)
	}
	return out
}

// withSecrets returns a copy of rt with the secret files read again (secrets-reload).
func (rt *runtime) withSecrets(secretsDir string) (*runtime, error) {
	turn, err := readTurnSecrets(rt.conf, secretsDir)
	if err != nil {
		return nil, err
	}
	next := *rt
	next.turn = turn
	return &next, nil
}
