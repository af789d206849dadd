// Package webrtc ingests browser calls over WHIP (RFC 9725) on pion/webrtc:
// an SDP offer in, an answer out, and the audio track (Opus or PCMU) into a
// media.Leg like any SIP leg. Sessions are admitted by an ingest.Admitter
// before any work is done for them; the audio goes to the admission's sink.
package webrtc

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	pw "github.com/pion/webrtc/v4"

	"github.com/callscribe/callscribe/ingest"
	"github.com/callscribe/callscribe/media"
)

// Session is one browser call.
type Session struct {
	ID      string
	Codec   string
	Leg     *media.Leg // nil until the audio track arrives
	Started time.Time

	pc      *pw.PeerConnection
	ticket  ingest.Ticket
	last    atomic.Int64 // unix nanos of the last RTP packet
	tracked atomic.Bool  // an audio track is being read (only the first is)
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

// Server is the WHIP endpoint; it is an http.Handler.
type Server struct {
	cfg   Config
	adm   ingest.Admitter
	rate  *ingest.PeerRate
	api   *pw.API
	token atomic.Pointer[string] // cfg.Token, or what SetToken set

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	wg       sync.WaitGroup
}

// ErrBadOffer is wrapped by errors about an unusable SDP offer (400).
var ErrBadOffer = errors.New("webrtc: bad offer")

// NewServer prepares the endpoint; adm admits its sessions.
func NewServer(cfg Config, adm ingest.Admitter) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webrtc: config: %w", err)
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
	se := pw.SettingEngine{LoggerFactory: pionLogs{cfg.Logger}}
	if r := cfg.ICEPorts; !r.IsZero() {
		if err := se.SetEphemeralUDPPortRange(uint16(r.Lo), uint16(r.Hi)); err != nil {
			return nil, fmt.Errorf("webrtc: config: ice_ports %s: %w", r, err)
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
	s := &Server{cfg: cfg, adm: adm, rate: ingest.NewPeerRate(cfg.OfferRate, cfg.OfferBurst), sessions: map[string]*Session{},
		api: pw.NewAPI(pw.WithMediaEngine(m), pw.WithSettingEngine(se))}
	s.token.Store(&cfg.Token)
	return s, nil
}

// SetToken replaces the bearer token (a configuration reload; empty: none):
// new requests need it, sessions in progress go on. Any goroutine.
func (s *Server) SetToken(token string) { s.token.Store(&token) }

// Active is the number of sessions.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// session is the live session with this id, or nil.
func (s *Server) session(id string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if tok := *s.token.Load(); tok != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+tok)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="callscribe"`)
		if r.Method == http.MethodPost {
			s.adm.Refused("webrtc", &ingest.Refusal{Reason: "unauthorized", HTTP: http.StatusUnauthorized})
		}
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

// refuse answers an offer that is not taken; counted unless admission
// refused it (it counts its own).
func (s *Server) refuse(w http.ResponseWriter, r *ingest.Refusal, counted bool) {
	if !counted {
		s.adm.Refused("webrtc", r)
	}
	if r.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(r.RetryAfter.Seconds())))
	}
	msg := r.Detail
	if msg == "" {
		msg = http.StatusText(r.HTTP)
	}
	http.Error(w, msg, r.HTTP)
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
	var peer netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		peer = ap.Addr()
	}
	if !s.rate.Allow(peer) {
		s.refuse(w, ingest.ErrRate, false)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		s.refuse(w, &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: "cannot read the offer"}, false)
		return
	}
	if err := checkOffer(body); err != nil {
		s.refuse(w, &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: err.Error()}, false)
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.refuse(w, ingest.ErrDraining, false)
		return
	}
	id := newID()
	// The slot is reserved before ICE gathering or anything else is done.
	// A session's own phrase lists: query parameters or headers.
	offer := ingest.Offer{ID: id, Source: "webrtc", Peer: peer, Legs: []string{"browser"}}
	for _, p := range []struct {
		query, header string
		to            *string
	}{{"hotwords", "X-Callscribe-Hotwords", &offer.Hotwords}, {"keywords", "X-Callscribe-Keywords", &offer.Keywords},
		{"redact", "X-Callscribe-Redact", &offer.Redact}} {
		*p.to = strings.Join(append(r.URL.Query()[p.query], r.Header.Values(p.header)...), ",")
	}
	ticket, err := s.adm.Admit(offer)
	if err != nil {
		s.refuse(w, ingest.AsRefusal(err), true)
		return
	}
	internal := func(detail string) {
		ticket.End("error", nil)
		s.refuse(w, &ingest.Refusal{Reason: "error", HTTP: http.StatusInternalServerError, Detail: detail}, false)
	}
	badOffer := func(err error) {
		ticket.End("error", nil)
		s.refuse(w, &ingest.Refusal{Reason: "bad_request", HTTP: http.StatusBadRequest, Detail: fmt.Sprintf("%v: %v", ErrBadOffer, err)}, false)
	}
	pc, err := s.api.NewPeerConnection(pw.Configuration{})
	if err != nil {
		internal("cannot start a session")
		return
	}
	sess := &Session{ID: id, pc: pc, ticket: ticket, Started: time.Now(), legSet: make(chan struct{}), reading: make(chan struct{}), done: make(chan struct{})}
	sess.last.Store(time.Now().UnixNano())
	if _, err := pc.AddTransceiverFromKind(pw.RTPCodecTypeAudio, pw.RTPTransceiverInit{Direction: pw.RTPTransceiverDirectionRecvonly}); err != nil {
		pc.Close()
		internal("cannot receive audio")
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
		badOffer(err)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		pc.Close()
		badOffer(err)
		return
	}
	gathered := pw.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		pc.Close()
		internal("cannot answer")
		return
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		ticket.End("shutdown", nil)
		s.refuse(w, ingest.ErrDraining, false)
		return
	}
	s.sessions[sess.ID] = sess
	s.wg.Add(1)
	s.mu.Unlock()
	go s.watch(sess)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", s.cfg.Path+"/"+sess.ID)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, pc.LocalDescription().SDP)
}

// track reads the session's first audio track into a leg; other tracks are
// left unread (one browser call, one leg).
func (s *Server) track(sess *Session, t *pw.TrackRemote) {
	if t.Kind() != pw.RTPCodecTypeAudio || !sess.tracked.CompareAndSwap(false, true) {
		return
	}
	// Whatever the peer sends, a panic ends only this session.
	defer func() {
		if v := recover(); v != nil {
			s.cfg.Logger.Error("webrtc: track reader panicked", "session", sess.ID, "panic", v, "stack", string(debug.Stack()))
			go s.end(sess, "error")
		}
	}()
	codec := t.Codec()
	name := strings.TrimPrefix(strings.ToLower(codec.MimeType), "audio/")
	if name == "pcmu" {
		name = "PCMU"
	}
	lo := s.cfg.Leg
	lo.PayloadTypes = map[uint8]string{uint8(codec.PayloadType): name}
	lo.DTMFPayloadType = -1
	lo.Sink = sess.ticket.Sink(0)
	leg, err := media.NewLeg(lo)
	if err != nil {
		s.cfg.Logger.Error("webrtc: audio track not decodable", "session", sess.ID, "codec", codec.MimeType, "err", err)
		go s.end(sess, "error")
		return
	}
	sess.Leg, sess.Codec = leg, name
	defer close(sess.reading)
	close(sess.legSet)
	sess.ticket.Start(map[string]string{"codec": name})
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
		var stats []media.LegStats
		select {
		case <-sess.legSet:
			select { // the reader stops once the connection is closed
			case <-sess.reading:
				stats = []media.LegStats{sess.Leg.Stats()}
			case <-time.After(2 * time.Second):
				// No counters then: the reader may still touch them. Audio
				// it hands on after End is dropped.
				s.cfg.Logger.Warn("webrtc: track reader did not stop", "session", sess.ID)
			}
		default:
		}
		close(sess.done)
		sess.ticket.End(reason, stats)
	})
}

// Close ends every session (reason shutdown) and refuses new ones.
// Idempotent.
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
