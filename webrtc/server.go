// Package webrtc ingests browser calls over WHIP (RFC 9725) on pion/webrtc:
// an SDP offer in, an answer out, and the audio track (Opus or PCMU) into a
// media.Leg like any SIP leg. What happens to the audio is the Handler's.
package webrtc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	pw "github.com/pion/webrtc/v4"

	"github.com/callscribe/callscribe/media"
)

// Config configures the WHIP endpoint. Zero fields take the defaults named.
type Config struct {
	// Path of the endpoint; default "/whip". Sessions live at Path/<id>.
	Path string
	// Token, when set, is the bearer token every request must carry.
	Token string
	// MaxSessions bounds concurrent sessions (503 beyond); default 100.
	MaxSessions int
	// PortLo and PortHi bound the ICE UDP ports; default: any.
	PortLo, PortHi uint16
	// PublicIPs are announced as host candidates (NAT 1:1) when set.
	PublicIPs []string
	// Loopback offers 127.0.0.1 candidates too (tests, a local demo).
	Loopback bool
	// ConnectTimeout ends a session whose ICE/DTLS has not connected; and
	// MediaTimeout one whose audio stopped; defaults 10 s and 30 s.
	ConnectTimeout, MediaTimeout time.Duration
	// Leg configures the audio receive path.
	Leg media.LegOptions
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Session is one browser call.
type Session struct {
	ID      string
	Codec   string
	Leg     *media.Leg // nil until the audio track arrives
	Started time.Time

	pc      *pw.PeerConnection
	last    atomic.Int64 // unix nanos of the last RTP packet
	legSet  chan struct{}
	reading chan struct{} // closed when the track reader has stopped
	done    chan struct{}
	endOnce sync.Once
	reason  string
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason is why the session ended: bye (DELETE), timeout, error, shutdown.
func (s *Session) Reason() string {
	select {
	case <-s.done:
		return s.reason
	default:
		return ""
	}
}

// Handler learns of sessions once their audio arrives, and of their end.
type Handler interface {
	SessionStarted(s *Session)
	SessionEnded(s *Session)
}

// Server is the WHIP endpoint; it is an http.Handler.
type Server struct {
	cfg Config
	h   Handler
	api *pw.API

	// Rejected counts offers refused (4xx, 5xx).
	Rejected atomic.Int64

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	wg       sync.WaitGroup
}

// ErrBadOffer is wrapped by errors about an unusable SDP offer (400).
var ErrBadOffer = errors.New("webrtc: bad offer")

// NewServer prepares the endpoint.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if cfg.Path == "" {
		cfg.Path = "/whip"
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 100
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.MediaTimeout <= 0 {
		cfg.MediaTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &pw.MediaEngine{}
	for _, c := range []pw.RTPCodecParameters{
		{RTPCodecCapability: pw.RTPCodecCapability{MimeType: pw.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
		{RTPCodecCapability: pw.RTPCodecCapability{MimeType: pw.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
	} {
		if err := m.RegisterCodec(c, pw.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("webrtc: codec %s: %w", c.MimeType, err)
		}
	}
	se := pw.SettingEngine{}
	if cfg.PortLo > 0 || cfg.PortHi > 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.PortLo, cfg.PortHi); err != nil {
			return nil, fmt.Errorf("webrtc: config: ice ports %d-%d: %w", cfg.PortLo, cfg.PortHi, err)
		}
	}
	for _, ip := range cfg.PublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("webrtc: config: public ip %q: %w", ip, err)
		}
	}
	if len(cfg.PublicIPs) > 0 { // NAT 1:1: host candidates carry the public addresses
		err := se.SetICEAddressRewriteRules(pw.ICEAddressRewriteRule{External: cfg.PublicIPs,
			AsCandidateType: pw.ICECandidateTypeHost, Mode: pw.ICEAddressRewriteReplace})
		if err != nil {
			return nil, fmt.Errorf("webrtc: config: public ips %v: %w", cfg.PublicIPs, err)
		}
	}
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	se.SetICETimeouts(5*time.Second, cfg.ConnectTimeout, 2*time.Second)
	return &Server{cfg: cfg, h: h, sessions: map[string]*Session{},
		api: pw.NewAPI(pw.WithMediaEngine(m), pw.WithSettingEngine(se))}, nil
}

// Active is the number of sessions.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost { // an offer: count it unless answered
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if sw.status != http.StatusCreated {
				s.Rejected.Add(1)
			}
		}()
		w = sw
	}
	if s.cfg.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.Token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callscribe"`)
		http.Error(w, "a bearer token is required", http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == s.cfg.Path:
		s.post(w, r)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, s.cfg.Path+"/"):
		id := strings.TrimPrefix(r.URL.Path, s.cfg.Path+"/")
		s.mu.Lock()
		sess := s.sessions[id]
		s.mu.Unlock()
		if sess == nil {
			http.Error(w, "no such session", http.StatusNotFound)
			return
		}
		s.end(sess, "bye")
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodOptions:
		w.Header().Set("Allow", "POST, DELETE, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "POST, DELETE, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// checkOffer tells whether the SDP has an audio stream.
func checkOffer(body []byte) error {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: the offer has no audio", ErrBadOffer)
}

func (s *Server) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "cannot read the offer", http.StatusBadRequest)
		return
	}
	if err := checkOffer(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	full := len(s.sessions) >= s.cfg.MaxSessions || s.closed
	s.mu.Unlock()
	if full {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many sessions", http.StatusServiceUnavailable)
		return
	}
	pc, err := s.api.NewPeerConnection(pw.Configuration{})
	if err != nil {
		http.Error(w, "cannot start a session", http.StatusInternalServerError)
		return
	}
	sess := &Session{ID: newID(), pc: pc, Started: time.Now(), legSet: make(chan struct{}), reading: make(chan struct{}), done: make(chan struct{})}
	sess.last.Store(time.Now().UnixNano())
	if _, err := pc.AddTransceiverFromKind(pw.RTPCodecTypeAudio, pw.RTPTransceiverInit{Direction: pw.RTPTransceiverDirectionRecvonly}); err != nil {
		pc.Close()
		http.Error(w, "cannot receive audio", http.StatusInternalServerError)
		return
	}
	pc.OnTrack(func(t *pw.TrackRemote, _ *pw.RTPReceiver) { s.track(sess, t) })
	pc.OnConnectionStateChange(func(st pw.PeerConnectionState) {
		switch st {
		case pw.PeerConnectionStateFailed:
			go s.end(sess, "timeout")
		case pw.PeerConnectionStateClosed:
			go s.end(sess, "bye")
		}
	})
	if err := pc.SetRemoteDescription(pw.SessionDescription{Type: pw.SDPTypeOffer, SDP: string(body)}); err != nil {
		pc.Close()
		http.Error(w, fmt.Sprintf("%v: %v", ErrBadOffer, err), http.StatusBadRequest)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		pc.Close()
		http.Error(w, fmt.Sprintf("%v: %v", ErrBadOffer, err), http.StatusBadRequest)
		return
	}
	gathered := pw.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		pc.Close()
		http.Error(w, "cannot answer", http.StatusInternalServerError)
		return
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
	}
	s.mu.Lock()
	s.sessions[sess.ID] = sess
	s.mu.Unlock()
	s.wg.Add(1)
	go s.watch(sess)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", s.cfg.Path+"/"+sess.ID)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, pc.LocalDescription().SDP)
}

// track reads the audio track into a leg.
func (s *Server) track(sess *Session, t *pw.TrackRemote) {
	if t.Kind() != pw.RTPCodecTypeAudio {
		return
	}
	codec := t.Codec()
	name := strings.TrimPrefix(strings.ToLower(codec.MimeType), "audio/")
	if name == "pcmu" {
		name = "PCMU"
	}
	lo := s.cfg.Leg
	lo.PayloadTypes = map[uint8]string{uint8(codec.PayloadType): name}
	lo.DTMFPayloadType = -1
	leg, err := media.NewLeg(lo)
	if err != nil {
		s.cfg.Logger.Error("webrtc: audio track not decodable", "session", sess.ID, "codec", codec.MimeType, "err", err)
		go s.end(sess, "error")
		return
	}
	sess.Leg, sess.Codec = leg, name
	defer close(sess.reading)
	close(sess.legSet)
	if s.h != nil {
		s.h.SessionStarted(sess)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		sess.last.Store(time.Now().UnixNano())
		leg.HandleRTP(buf[:n])
	}
}

// watch ends a session that never connects or whose audio stops.
func (s *Server) watch(sess *Session) {
	defer s.wg.Done()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-sess.done:
			return
		case <-tick.C:
			idle := time.Since(time.Unix(0, sess.last.Load()))
			select {
			case <-sess.legSet:
				if idle > s.cfg.MediaTimeout {
					s.end(sess, "timeout")
				}
			default:
				if idle > s.cfg.ConnectTimeout {
					s.end(sess, "timeout")
				}
			}
		}
	}
}

// end closes a session once.
func (s *Server) end(sess *Session, reason string) {
	sess.endOnce.Do(func() {
		sess.reason = reason
		sess.pc.Close()
		s.mu.Lock()
		delete(s.sessions, sess.ID)
		s.mu.Unlock()
		select {
		case <-sess.legSet:
			select { // the reader stops once the connection is closed
			case <-sess.reading:
			case <-time.After(2 * time.Second):
				s.cfg.Logger.Warn("webrtc: track reader did not stop", "session", sess.ID)
			}
			close(sess.done)
			if s.h != nil {
				s.h.SessionEnded(sess)
			}
		default:
			close(sess.done)
		}
	})
}

// Drain refuses new sessions (503) and lets the ones in progress go on.
func (s *Server) Drain() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// Close ends every session (reason shutdown). Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var all []*Session
	for _, v := range s.sessions {
		all = append(all, v)
	}
	s.mu.Unlock()
	for _, v := range all {
		s.end(v, "shutdown")
	}
	s.wg.Wait()
	return nil
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
