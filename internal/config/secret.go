package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CredentialName is the name of the systemd credential that may hold the
// client secret: LoadCredential=client_secret:/etc/scanagent/client_secret
// in the unit makes it $CREDENTIALS_DIRECTORY/client_secret.
const CredentialName = "client_secret"

// credentialPath is the systemd credential holding the client secret, or ""
// when the process was not given one.
func credentialPath() string {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, CredentialName)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// ClientSecret returns the platform client secret from, in this order,
// [platform] client_secret, the systemd credential client_secret
// ($CREDENTIALS_DIRECTORY/client_secret, from LoadCredential= in the unit),
// the file named by client_secret_file, or the SCANAGENT_CLIENT_SECRET
// environment variable; a file's content is trimmed of surrounding white
// space. The credential comes before client_secret_file so that the
// service, which cannot read a root-only secret file, gets the same secret
// through systemd while `config check` run as root reads the file. A file
// that cannot be read is an error, not a reason to fall back to the
// environment. Errors never contain the secret.
func (c *Config) ClientSecret() (string, error) {
	if s := c.Platform.ClientSecret; s != "" {
		return s, nil
	}
	if f := credentialPath(); f != "" {
		return readSecret("systemd credential "+CredentialName, f)
	}
	if f := c.Platform.ClientSecretFile; f != "" {
		return readSecret("client_secret_file", f)
	}
	if s := os.Getenv(EnvSecret); s != "" {
		return s, nil
	}
	return "", errors.New("no client secret: set [platform] client_secret, client_secret_file or " + EnvSecret +
		" (or give the service the systemd credential " + CredentialName + ")")
}

// readSecret reads a secret file; what names the source in errors.
func readSecret(what, f string) (string, error) {
	b, err := readSmall(f, 64<<10)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty; put the client secret in it", what, f)
	}
	return s, nil
}

// secretProblem is ClientSecret's failure as a validation problem: the key
// to blame and the message, or "" when a secret is available.
func (c *Config) secretProblem() (key, msg string) {
	_, err := c.ClientSecret()
	switch {
	case err == nil:
		return "", ""
	case credentialPath() != "":
		return "platform.client_secret", err.Error()
	case c.Platform.ClientSecretFile != "":
		return "platform.client_secret_file", strings.TrimPrefix(err.Error(), "client_secret_file: ")
	}
	return "platform.client_secret", "is empty; set [platform] client_secret, client_secret_file or " + EnvSecret
}

// Warnings lists things that work but should be fixed: a configuration file
// or secret file that holds client_secret and that other users can read
// (Unix permissions only; Windows ACLs are checked by `service install`),
// cleartext or exposed network settings (exposure.go), and settings that
// are ignored.
func (c *Config) Warnings() []string {
	var w []string
	p := c.Platform
	if p.ClientSecret != "" && c.Path != "" {
		if mode, ok := othersCanRead(c.Path); ok {
			w = append(w, fmt.Sprintf("%s holds [platform] client_secret and other users can read it (mode %04o): run chmod 600 %s (or chown root:%s and chmod 640 for the service's group), or move the secret to client_secret_file or %s",
				c.Path, mode, c.Path, serviceGroup, EnvSecret))
		}
	}
	if p.ClientSecret == "" && p.ClientSecretFile != "" && credentialPath() == "" {
		if mode, ok := othersCanRead(p.ClientSecretFile); ok {
			w = append(w, fmt.Sprintf("client_secret_file %s can be read by other users (mode %04o): run chmod 600 %s (or chown root:%s and chmod 640 for the service's group)",
				p.ClientSecretFile, mode, p.ClientSecretFile, serviceGroup))
		}
	}
	w = append(w, c.exposureWarnings()...)
	if p.ClientSecret != "" && p.ClientSecretFile != "" {
		w = append(w, "[platform] client_secret and client_secret_file are both set: client_secret is used; remove one")
	}
	if c.Crypto.Mode == "ecb" && c.Crypto.IV != "" {
		w = append(w, `[crypto] iv is ignored when mode = "ecb"`)
	}
	return w
}
