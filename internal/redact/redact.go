// Package redact is the one place where secrets and personal data are
// removed from text before it is logged, stored or printed: access tokens
// and client secrets in URLs, forms and JSON bodies, any secret value
// registered with it (client secret, current token), the values of the
// personal fields idCard, name and xgh in URLs, forms and JSON, and every
// possible ID number (personal.go). A Redactor's String applies all of it:
// text the platform sends back and errors that quote a request go through
// it before they reach a log line, a record or an answer.
package redact

import (
	"regexp"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// tokenParam is an access token or client secret as a URL or form parameter
// or a JSON string member. Both patterns are compiled on first use: the
// text they clean is that of errors and refusals, which an agent at work
// may never meet.
var tokenParam = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)((?:access_token|client_secret|token)(?:"\s*:\s*"|=))[^&\s"']*`)
})

// personalParam is a personal field of the upload form (idCard, name, xgh)
// as a URL or form parameter or a JSON string member; the key must not be
// the tail of a longer name (termName is kept).
var personalParam = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)((?:^|[^a-z0-9_])"?(?:idCard|name|xgh)(?:"\s*:\s*"|=))[^&\s"']*`)
})

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

// String returns s with access_token/client_secret parameters, the values
// of idCard, name and xgh parameters and every registered secret replaced
// by Mask, and possible ID numbers masked (IDNumbers). A nil Redactor does
// all but the registered secrets.
func (r *Redactor) String(s string) string {
	s = tokenParam().ReplaceAllString(s, "${1}"+Mask)
	s = personalParam().ReplaceAllString(s, "${1}"+Mask)
	if r != nil {
		r.mu.RLock()
		for sec := range r.secrets {
			s = strings.ReplaceAll(s, sec, Mask)
		}
		r.mu.RUnlock()
	}
	return IDNumbers(s)
}

// Error is String of err's text ("" for nil).
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}
