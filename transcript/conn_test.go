package transcript

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callscribe/callscribe/internal/testcert"
	"github.com/callscribe/callscribe/transcript/transcripttest"
	"github.com/redis/go-redis/v9"
)

// Against a Redis that speaks only TLS and wants AUTH, the publisher
// delivers, a group reader and a follower read, with the default user's
// password or an ACL user's; a wrong password, plain RESP, or a CA that
// did not sign the server's certificate is refused.
func TestRedisWithTLSAndAUTH(t *testing.T) {
	rd := transcripttest.StartSecure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := Conn{Password: rd.Password, TLS: true, TLSCAFile: rd.CAFile}
	user := Conn{Username: rd.User, Password: rd.UserPass, TLS: true, TLSCAFile: rd.CAFile, TLSServerName: "localhost"}

	o := Options{Addr: rd.Addr, Conn: admin}
	rdr, err := NewReader(ctx, ReaderOptions{Addr: rd.Addr, Conn: user, Group: "app", Consumer: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	p := newPublisher(t, o)
	defer p.Close()
	p.Publish(NewFinal("c", Utterance{Leg: "caller", Text: "over tls"}))
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ms, err := rdr.Read(ctx, 10, 5*time.Second)
	if err != nil || len(ms) != 1 || ms[0].Event.Fields["text"] != "over tls" {
		t.Fatalf("group reader: %+v, %v", ms, err)
	}
	f, err := NewFollower(Options{Addr: rd.Addr, Conn: user}.Follower(2))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ms, err := f.Read(ctx, "c", "0", 10, time.Second); err != nil || len(ms) != 1 {
		t.Fatalf("follower: %+v, %v", ms, err)
	}

	otherCA, _ := testcert.Write(t)
	for _, tc := range []struct {
		name string
		conn Conn
		want string
	}{
		{"wrong password", Conn{Username: rd.User, Password: "nope", TLS: true, TLSCAFile: rd.CAFile}, "WRONGPASS"},
		{"no password", Conn{TLS: true, TLSCAFile: rd.CAFile}, "NOAUTH"},
		{"plain RESP", Conn{Password: rd.Password}, ""},
		{"another CA", Conn{Password: rd.Password, TLS: true, TLSCAFile: otherCA}, "certificate"},
		{"the system's roots", Conn{Password: rd.Password, TLS: true}, "certificate"},
	} {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := NewReader(ctx, ReaderOptions{Addr: rd.Addr, Conn: tc.conn, Group: "app", Consumer: "a2"})
		cancel()
		if err == nil {
			r.Close()
			t.Errorf("%s: a reader joined", tc.name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// The TLS keys are checked with the configuration: a CA file needs tls and
// must hold a PEM certificate.
func TestConnValidate(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		conn Conn
		want string
	}{
		{Conn{TLSCAFile: "/etc/ssl/certs/ca-certificates.crt"}, "need tls"},
		{Conn{TLSServerName: "redis.internal"}, "need tls"},
		{Conn{TLS: true, TLSCAFile: "/nonexistent.pem"}, "tls_ca_file"},
		{Conn{TLS: true, TLSCAFile: bad}, "no PEM certificate"},
	} {
		o := DefaultOptions()
		o.Conn = tc.conn
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.conn, err, tc.want)
		}
	}
	for _, c := range []Conn{{}, {Username: "u", Password: "p", TLS: true}, {TLS: true, TLSServerName: "redis.internal"}} {
		o := DefaultOptions()
		o.Conn = c
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// A cluster's nodes are dialled at the addresses they announce: without
// tls_server_name their certificates are checked for the host of addr.
func TestClusterTLSNamesTheSeedHost(t *testing.T) {
	for _, tc := range []struct {
		conn Conn
		want string
	}{
		{Conn{TLS: true}, "redis.internal"},
		{Conn{TLS: true, TLSServerName: "other.internal"}, "other.internal"},
	} {
		c, err := tc.conn.NewClient("redis.internal:6379", true, redis.UniversalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cc, ok := c.(*redis.ClusterClient)
		if !ok {
			t.Fatalf("a %T for a cluster", c)
		}
		if got := cc.Options().TLSConfig; got == nil || got.ServerName != tc.want {
			t.Errorf("%+v: TLS %v, want the name %s", tc.conn, got, tc.want)
		}
		c.Close()
	}
}
