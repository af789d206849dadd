package media

import (
	"errors"
	"fmt"
)

// ErrBadOgg is returned for data that is not a readable Ogg stream.
var ErrBadOgg = errors.New("media: bad Ogg")

// OggPackets splits an Ogg stream of one logical bitstream (an .opus file)
// into its packets, joining lacing values across pages (RFC 3533).
func OggPackets(b []byte) ([][]byte, error) {
	var out [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			return nil, fmt.Errorf("%w: no page header at the next %d bytes", ErrBadOgg, len(b))
		}
		n := int(b[26])
		if len(b) < 27+n {
			return nil, fmt.Errorf("%w: truncated segment table", ErrBadOgg)
		}
		lacing, body := b[27:27+n], b[27+n:]
		off := 0
		for _, l := range lacing {
			if off+int(l) > len(body) {
				return nil, fmt.Errorf("%w: truncated page", ErrBadOgg)
			}
			cur = append(cur, body[off:off+int(l)]...)
			off += int(l)
			if l < 255 {
				out = append(out, cur)
				cur = nil
			}
		}
		b = body[off:]
	}
	return out, nil
}
