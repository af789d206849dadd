package media

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/pion/srtp/v3"
)

// SRTPSuite is an SDES crypto suite (RFC 4568, RFC 6188, RFC 7714): the
// name an SDP a=crypto line gives and the SRTP protection it means.
type SRTPSuite struct {
	Name    string
	profile srtp.ProtectionProfile
	keyLen  int // master key
	saltLen int // master salt
}

// KeyLen is the length of the suite's inline key: master key and salt.
func (s SRTPSuite) KeyLen() int { return s.keyLen + s.saltLen }

// SRTPSuites are the suites a leg decrypts, most preferred first.
func SRTPSuites() []SRTPSuite {
	return []SRTPSuite{
		{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
		{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
		{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
		{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14},
		{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14},
		{"AES_256_CM_HMAC_SHA1_32", srtp.ProtectionProfileAes256CmHmacSha1_32, 32, 14},
	}
}

// LookupSRTPSuite finds a suite by its SDES name.
func LookupSRTPSuite(name string) (SRTPSuite, bool) {
	for _, s := range SRTPSuites() {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return SRTPSuite{}, false
}

// NewSRTPKey returns a fresh random master key and salt for suite.
func NewSRTPKey(suite SRTPSuite) []byte {
	k := make([]byte, suite.KeyLen())
	rand.Read(k)
	return k
}

// srtpReplayWindow is how many packets back a replayed one is recognized.
const srtpReplayWindow = 256

// SRTP is one leg's keys (RFC 3711): the peer's, to decrypt what it sends
// (SRTP and SRTCP), and ours, to encrypt the RTCP we send. A context keeps
// state per packet, so each has one user: in the leg's packet path, inRTCP
// and out the receiver's RTCP path.
type SRTP struct {
	Suite  SRTPSuite
	in     *srtp.Context
	inRTCP *srtp.Context
	out    *srtp.Context
}

// NewSRTP prepares a leg's SRTP with the peer's inline key (key and salt,
// as its a=crypto line gave it) and ours.
func NewSRTP(suite SRTPSuite, remote, local []byte) (*SRTP, error) {
	if len(remote) != suite.KeyLen() || len(local) != suite.KeyLen() {
		return nil, fmt.Errorf("media: %s wants a %d-byte key", suite.Name, suite.KeyLen())
	}
	s := &SRTP{Suite: suite}
	var err error
	replay := []srtp.ContextOption{srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtpReplayWindow)}
	if s.in, err = srtp.CreateContext(remote[:suite.keyLen], remote[suite.keyLen:], suite.profile, replay...); err != nil {
		return nil, fmt.Errorf("media: SRTP: %w", err)
	}
	if s.inRTCP, err = srtp.CreateContext(remote[:suite.keyLen], remote[suite.keyLen:], suite.profile, replay...); err != nil {
		return nil, fmt.Errorf("media: SRTP: %w", err)
	}
	if s.out, err = srtp.CreateContext(local[:suite.keyLen], local[suite.keyLen:], suite.profile); err != nil {
		return nil, fmt.Errorf("media: SRTP: %w", err)
	}
	return s, nil
}
