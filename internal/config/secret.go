package config

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// ClientSecret returns the platform client secret from, in this order,
// [platform] client_secret, the file named by client_secret_file (trimmed
// of surrounding white space) or the SCANAGENT_CLIENT_SECRET environment
// variable. A client_secret_file that cannot be read is an error, not a
// reason to fall back to the environment. Errors never contain the secret.
func (c *Config) ClientSecret() (string, error) {
	if s := c.Platform.ClientSecret; s != "" {
		return s, nil
	}
	if f := c.Platform.ClientSecretFile; f != "" {
		b, err := readSmall(f, 64<<10)
		if err != nil {
			return "", fmt.Errorf("client_secret_file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("client_secret_file: %s is empty; put the client secret in it", f)
		}
		return s, nil
	}
	if s := os.Getenv(EnvSecret); s != "" {
		return s, nil
	}
	return "", errors.New("no client secret: set [platform] client_secret, client_secret_file or " + EnvSecret)
}

// secretProblem is ClientSecret's failure as a validation problem: the key
// to blame and the message, or "" when a secret is available.
func (c *Config) secretProblem() (key, msg string) {
	_, err := c.ClientSecret()
	switch {
	case err == nil:
		return "", ""
	case c.Platform.ClientSecretFile != "":
		return "platform.client_secret_file", strings.TrimPrefix(err.Error(), "client_secret_file: ")
	}
	return "platform.client_secret", "is empty; set [platform] client_secret, client_secret_file or " + EnvSecret
}

// Warnings lists things that work but should be fixed: a configuration file
// that holds client_secret and that other users can read (Unix permissions
// only; Windows ACLs are not checked), and settings that are ignored.
func (c *Config) Warnings() []string {
	var w []string
	p := c.Platform
	if p.ClientSecret != "" && c.Path != "" {
		if mode, ok := othersCanRead(c.Path); ok {
			w = append(w, fmt.Sprintf("%s holds [platform] client_secret and other users can read it (mode %04o): run chmod 600 %s, or move the secret to client_secret_file or %s",
				c.Path, mode, c.Path, EnvSecret))
		}
	}
	if p.ClientSecret == "" && p.ClientSecretFile != "" {
		if mode, ok := othersCanRead(p.ClientSecretFile); ok {
			w = append(w, fmt.Sprintf("client_secret_file %s can be read by other users (mode %04o): run chmod 600 %s",
				p.ClientSecretFile, mode, p.ClientSecretFile))
		}
	}
	if p.ClientSecret != "" && p.ClientSecretFile != "" {
		w = append(w, "[platform] client_secret and client_secret_file are both set: client_secret is used; remove one")
	}
	if c.Crypto.Mode == "ecb" && c.Crypto.IV != "" {
		w = append(w, `[crypto] iv is ignored when mode = "ecb"`)
	}
	return w
}

// othersCanRead reports whether group or other may read path.
func othersCanRead(path string) (os.FileMode, bool) {
	if runtime.GOOS == "windows" {
		return 0, false
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return st.Mode().Perm(), st.Mode().Perm()&0o044 != 0
}
