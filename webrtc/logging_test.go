package webrtc

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// pion's lines come through the gateway's logger with their scope; at the
// usual level only its errors, as pion's own default shows.
func TestPionLogs(t *testing.T) {
	for _, c := range []struct {
		level slog.Level
		want  []string
	}{
		{slog.LevelInfo, []string{`level=ERROR msg="dtls failed 3" scope=pion/dtls`}},
		{slog.LevelDebug, []string{`level=DEBUG msg="checking 1" scope=pion/ice`, `level=DEBUG msg="no candidates 2" scope=pion/ice`,
			`level=ERROR msg="dtls failed 3" scope=pion/dtls`}},
	} {
		var out bytes.Buffer
		f := pionLogs{slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: c.level,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}))}
		ice, dtls := f.NewLogger("ice"), f.NewLogger("dtls")
		ice.Tracef("trace %d", 0)
		ice.Infof("checking %d", 1)
		ice.Warnf("no candidates %d", 2)
		dtls.Errorf("dtls failed %d", 3)
		got := strings.Split(strings.TrimSpace(out.String()), "\n")
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("at %v:\n%s\nwant\n%s", c.level, out.String(), strings.Join(c.want, "\n"))
		}
	}
}
