package config

import (
	"os"
	"path/filepath"
	"runtime"
)

// EnvConfig names the environment variable that overrides the default
// configuration path.
const EnvConfig = "SCANAGENT_CONFIG"

// EnvSecret names the environment variable that may hold the client secret.
const EnvSecret = "SCANAGENT_CLIENT_SECRET"

// programData is %ProgramData% on Windows, with the usual fallback.
func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// DefaultPath is the configuration file used when neither --config nor
// SCANAGENT_CONFIG is given.
func DefaultPath() string {
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "scanagent", "config.toml")
	}
	return "/etc/scanagent/config.toml"
}

// DefaultDataDir is where queue.db and the admin socket live by default.
func DefaultDataDir() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "scanagent", "data")
	}
	return "/var/lib/scanagent"
}

// DefaultServiceLogFile is where the agent logs when it runs as a Windows
// service and log_file is "": %ProgramData%\scanagent\scanagent.log (a
// service has no console). It is "" elsewhere: under systemd, stderr goes to
// the journal.
func DefaultServiceLogFile() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "scanagent", "scanagent.log")
	}
	return ""
}
