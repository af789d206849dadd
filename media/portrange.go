package media

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrPortRange is wrapped by the errors of a port range that does not
// parse or is out of bounds.
var ErrPortRange = errors.New("want LO-HI, ports 1 to 65535 with LO <= HI (e.g. 20000-30000)")

// PortRange is a range of UDP ports, both ends included, written LO-HI in
// configuration files, flags and environment variables ("20000-30000").
// The zero range, written "", is no range at all: what it means (any port,
// or the owner's default) is the owner's to say.
type PortRange struct {
	Lo, Hi int
}

// ParsePortRange parses "LO-HI" (spaces around either number allowed);
// "" is the zero range.
func ParsePortRange(s string) (PortRange, error) {
	if strings.TrimSpace(s) == "" {
		return PortRange{}, nil
	}
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	r := PortRange{a, b}
	if !ok || err1 != nil || err2 != nil || r.Validate() != nil {
		return PortRange{}, fmt.Errorf("%q: %w", s, ErrPortRange)
	}
	return r, nil
}

// Validate checks a range that is set: 1 <= Lo <= Hi <= 65535. The zero
// range is valid.
func (r PortRange) Validate() error {
	if r.IsZero() {
		return nil
	}
	if r.Lo < 1 || r.Hi > 65535 || r.Hi < r.Lo {
		return fmt.Errorf("%q: %w", r.String(), ErrPortRange)
	}
	return nil
}

// IsZero tells the zero range (none).
func (r PortRange) IsZero() bool { return r == PortRange{} }

// String is "LO-HI", or "" for the zero range.
func (r PortRange) String() string {
	if r.IsZero() {
		return ""
	}
	return strconv.Itoa(r.Lo) + "-" + strconv.Itoa(r.Hi)
}

// MarshalText writes String.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "LO-HI" (ParsePortRange): a YAML string, a flag or
// an environment variable.
func (r *PortRange) UnmarshalText(b []byte) error {
	p, err := ParsePortRange(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}
