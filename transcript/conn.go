package transcript

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/callscribe/callscribe/internal/capool"
)

// Conn is how a client reaches Redis beyond its address: the user and
// password it authenticates with (AUTH; an ACL user, or the default user
// of requirepass) and TLS, as managed Redis services ask. The zero value
// speaks plain RESP without AUTH.
type Conn struct {
	// Username is the ACL user; empty: the default user (requirepass).
	Username string `yaml:"username"`
	// Password authenticates the user; empty: no AUTH. A secret: set it
	// with $CALLSCRIBE_REDIS_PASSWORD rather than in a file others read.
	Password string `yaml:"password"`
	// TLS speaks TLS to Redis (1.2 or later), verifying its certificate
	// against the system's roots or tls_ca_file.
	TLS bool `yaml:"tls"`
	// TLSCAFile is a PEM file of the CAs that sign Redis's certificate;
	// empty: the system's roots. Needs tls.
	TLSCAFile string `yaml:"tls_ca_file"`
	// TLSServerName is the name Redis's certificate is checked for;
	// empty: the host of addr (of each node dialled, or with cluster the
	// host of addr for every node). Needs tls.
	TLSServerName string `yaml:"tls_server_name"`
}

// Validate checks the TLS settings (the CA file is read); an error names
// the key.
func (c Conn) Validate() error {
	_, err := c.tlsConfig()
	return err
}

// tlsConfig is the client's TLS configuration; nil without TLS.
func (c Conn) tlsConfig() (*tls.Config, error) {
	if !c.TLS {
		if c.TLSCAFile != "" || c.TLSServerName != "" {
			return nil, errors.New("tls_ca_file, tls_server_name: need tls: true")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if c.TLSCAFile != "" {
		pool, err := capool.Load(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// NewClient is a go-redis client of addr with these credentials and TLS;
// o carries the caller's pool and timeout settings.
func (c Conn) NewClient(addr string, cluster bool, o redis.UniversalOptions) (redis.UniversalClient, error) {
	t, err := c.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("transcript: redis %w", err)
	}
	if t != nil && t.ServerName == "" && cluster {
		// A cluster's nodes are dialled at the addresses they announce
		// (IPs, mostly); their certificates name the cluster's host.
		if host, _, err := net.SplitHostPort(addr); err == nil {
			t.ServerName = host
		}
	}
	o.Addrs, o.IsClusterMode = []string{addr}, cluster
	o.Username, o.Password, o.TLSConfig = c.Username, c.Password, t
	return redis.NewUniversalClient(&o), nil
}
