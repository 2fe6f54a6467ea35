// Package redact is the one place where secrets are removed from text before
// it is logged, stored or printed: access tokens in URLs and JSON bodies, and
// any secret value registered with it (client secret, current token). It does
// not mask ID numbers; those never reach text in plaintext.
package redact

import (
	"regexp"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "REDACTED"

var tokenParam = regexp.MustCompile(`(?i)((?:access_token|client_secret|token)(?:"\s*:\s*"|=))[^&\s"']*`)

// Redactor remembers secret values to strip from any text.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]struct{}
}

// New returns a Redactor that strips the given secrets (empty ones ignored).
func New(secrets ...string) *Redactor {
	r := &Redactor{secrets: map[string]struct{}{}}
	r.Add(secrets...)
	return r
}

// Add registers more secret values, e.g. each access token as it is issued.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= 4 { // shorter values would mangle ordinary text
			r.secrets[s] = struct{}{}
		}
	}
}

// String returns s with access_token/client_secret parameters and every
// registered secret replaced by Mask. A nil Redactor still strips parameters.
func (r *Redactor) String(s string) string {
	s = tokenParam.ReplaceAllString(s, "${1}"+Mask)
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Mask)
	}
	return s
}

// Error is String of err's text ("" for nil).
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}
