// Package capool reads a PEM file of certificate authorities, for the TLS
// clients that verify a server against a CA file of their configuration.
package capool

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Load reads path into a pool; a file with no PEM certificate is an error.
func Load(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}
