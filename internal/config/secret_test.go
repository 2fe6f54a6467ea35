package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestClientSecret(t *testing.T) {
	dir := t.TempDir()
	file := mustWrite(t, dir, "secret", "  s3cret-from-file \r\n")
	empty := mustWrite(t, dir, "empty", " \n")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name         string
		inline, file string
		env          string
		want         string
		wantErr      string // substring; "" for no error
	}{
		{"inline", "inline", "", "", "inline", ""},
		{"inline wins over file and env", "inline", file, "env", "inline", ""},
		{"file, trimmed", "", file, "", "s3cret-from-file", ""},
		{"file wins over env", "", file, "env", "s3cret-from-file", ""},
		{"env", "", "", "from-env", "from-env", ""},
		{"file missing is an error, not a fallback", "", missing, "env", "", "does not exist"},
		{"file empty", "", empty, "", "", "is empty"},
		{"file is a directory", "", dir, "", "", "not a regular file"},
		{"none", "", "", "", "", "set [platform] client_secret, client_secret_file or SCANAGENT_CLIENT_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvSecret, tt.env)
			t.Setenv("CREDENTIALS_DIRECTORY", "")
			c := validConfig()
			c.Platform.ClientSecret, c.Platform.ClientSecretFile = tt.inline, tt.file
			got, err := c.ClientSecret()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v, want an error containing %q", got, err, tt.wantErr)
				}
				if p := c.Validate(); len(p) != 1 || !strings.Contains(p[0].Msg, tt.wantErr) {
					t.Errorf("Validate: got %q, want one problem containing %q", p.Error(), tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v, want %q", got, err, tt.want)
			}
			if p := c.Validate(); len(p) != 0 {
				t.Errorf("Validate: got %q, want no problem", p.Error())
			}
		})
	}
}

// TestClientSecretCredential: the systemd credential (LoadCredential=)
// comes after an inline secret and before client_secret_file, which the
// service's user may not be able to read.
func TestClientSecretCredential(t *testing.T) {
	dir := t.TempDir()
	file := mustWrite(t, dir, "secret", "from-file\n")
	creds := t.TempDir()
	mustWrite(t, creds, CredentialName, "from-credential\n")
	emptyCreds := t.TempDir()
	mustWrite(t, emptyCreds, CredentialName, "\n")
	for _, tt := range []struct {
		name, credDir, inline, file, want, wantErr string
	}{
		{"credential before file", creds, "", file, "from-credential", ""},
		{"credential alone", creds, "", "", "from-credential", ""},
		{"inline before credential", creds, "inline", file, "inline", ""},
		{"no credential in the directory: the file", t.TempDir(), "", file, "from-file", ""},
		{"empty credential", emptyCreds, "", file, "", "systemd credential client_secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CREDENTIALS_DIRECTORY", tt.credDir)
			t.Setenv(EnvSecret, "")
			c := validConfig()
			c.Platform.ClientSecret, c.Platform.ClientSecretFile = tt.inline, tt.file
			got, err := c.ClientSecret()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error naming %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			if p := c.Validate(); len(p) != 0 {
				t.Errorf("Validate: %v", p)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	t.Setenv(EnvSecret, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	secretFile := mustWrite(t, dir, "secret", "s3cret\n")
	inline := head + reader1
	viaFile := "[platform]\nclient_id = \"c\"\nclient_secret_file = \"secret\"\napp_id = \"01\"\n" + reader1
	tests := []struct {
		name       string
		text       string
		mode       os.FileMode
		secretMode os.FileMode
		want       []string // substrings, one per warning
	}{
		{"inline secret, world-readable", inline, 0o644, 0o600, []string{"holds [platform] client_secret and other users can read it (mode 0644): run chmod 600"}},
		{"inline secret, group-readable", inline, 0o640, 0o600, []string{"client_secret_file or SCANAGENT_CLIENT_SECRET"}},
		{"inline secret, private", inline, 0o600, 0o600, nil},
		{"secret in a file, config world-readable", viaFile, 0o644, 0o600, nil},
		{"secret file world-readable", viaFile, 0o600, 0o644, []string{"client_secret_file " + secretFile + " can be read by other users (mode 0644): run chmod 600"}},
		{"both set", strings.Replace(inline, "app_id", "client_secret_file = \"secret\"\napp_id", 1), 0o600, 0o600, []string{"both set"}},
		{"iv ignored", inline + "[crypto]\niv = \"0123456789abcdef\"\n", 0o600, 0o600, []string{"iv is ignored"}},
		{"http to another host", strings.Replace(inline, "app_id", "base_url = \"http://open.example.edu/\"\napp_id", 1), 0o600, 0o600,
			[]string{"base_url http://open.example.edu/ is cleartext http:// to another machine: the access token and every scan cross the network readable; use https://open.example.edu/"}},
		{"http to loopback", strings.Replace(inline, "app_id", "base_url = \"http://127.0.0.1:8080\"\napp_id", 1), 0o600, 0o600, nil},
		{"http to localhost", strings.Replace(inline, "app_id", "base_url = \"http://localhost:8080\"\napp_id", 1), 0o600, 0o600, nil},
		{"https to another host", strings.Replace(inline, "app_id", "base_url = \"https://open.example.edu\"\napp_id", 1), 0o600, 0o600, nil},
		{"admin_listen on every interface", "[agent]\nadmin_listen = \":9465\"\n" + inline, 0o600, 0o600, []string{`admin_listen ":9465" can be reached from other machines`}},
		{"admin_listen 0.0.0.0", "[agent]\nadmin_listen = \"0.0.0.0:9465\"\n" + inline, 0o600, 0o600, []string{"can be reached from other machines"}},
		{"admin_listen on a LAN address", "[agent]\nadmin_listen = \"10.1.2.3:9465\"\n" + inline, 0o600, 0o600, []string{"can be reached from other machines"}},
		{"admin_listen on ::1", "[agent]\nadmin_listen = \"[::1]:9465\"\n" + inline, 0o600, 0o600, nil},
		{"admin_listen on localhost", "[agent]\nadmin_listen = \"localhost:9465\"\n" + inline, 0o600, 0o600, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := mustWrite(t, dir, "c.toml", tt.text)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(secretFile, tt.secretMode); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := cfg.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("got %d warnings %q, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("got %q, want it to contain %q", got[i], tt.want[i])
				}
				if strings.Contains(got[i], "s3cret") || strings.Contains(got[i], `"s"`) {
					t.Errorf("got %q, want no secret in it", got[i])
				}
			}
		})
	}
}
