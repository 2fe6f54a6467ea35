package config

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestExampleMatchesRepoCopy(t *testing.T) {
	root, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, Example) {
		t.Errorf("internal/config/example.toml differs from config.example.toml; after editing config.example.toml, run from the repository root:\n\tcp config.example.toml internal/config/example.toml")
	}
}

// TestExampleDefaults keeps the defaults the example states equal to
// Default() and DefaultReader().
func TestExampleDefaults(t *testing.T) {
	t.Setenv(EnvSecret, "")
	cfg, probs := parse(Example, "")
	if len(probs) != 0 {
		t.Fatalf("the example has problems:\n%v", probs)
	}
	def := Default()
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"[agent]", cfg.Agent, def.Agent},
		{"[platform]", cfg.Platform, def.Platform},
		{"[upload]", cfg.Upload, def.Upload},
		{"[crypto]", cfg.Crypto, def.Crypto},
		{"[queue]", cfg.Queue, def.Queue},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s in the example:\ngot  %+v\nwant %+v (Default())", tt.name, tt.got, tt.want)
		}
	}
	if len(cfg.Readers) != 1 {
		t.Fatalf("readers in the example: got %d, want 1", len(cfg.Readers))
	}
	r := cfg.Readers[0]
	want := DefaultReader()
	want.Name, want.Port, want.TermName, want.TermSn = r.Name, r.Port, r.TermName, r.TermSn
	if !reflect.DeepEqual(r, want) {
		t.Errorf("[[reader]] in the example:\ngot  %+v\nwant %+v (DefaultReader())", r, want)
	}
	if r.Name == "" || r.Port == "" || r.TermName == "" || r.TermSn == "" {
		t.Errorf("[[reader]] in the example: got %+v, want name, port, term_name and term_sn filled in", r)
	}

	// Only what a site must supply is missing.
	var keys []string
	for _, p := range cfg.Validate() {
		keys = append(keys, p.Key)
	}
	if want := []string{"[platform] client_id", "[platform] client_secret", "[platform] app_id"}; !slices.Equal(keys, want) {
		t.Errorf("Validate(example): got problems for %q, want only %q", keys, want)
	}
}

// TestExampleDocumentsEveryKey checks that each key appears in the example,
// set or commented out.
func TestExampleDocumentsEveryKey(t *testing.T) {
	text := string(Example)
	for table, keys := range tableKeys {
		for _, k := range keys {
			if table == "reader" && k == "map" {
				if !strings.Contains(text, "[reader.map]") {
					t.Errorf("the example does not show [reader.map]")
				}
				continue
			}
			re := regexp.MustCompile(`(?m)^#? ?` + regexp.QuoteMeta(k) + ` +=`)
			if !re.MatchString(text) {
				t.Errorf("the example does not document %s %s", tableTitle(table), k)
			}
		}
	}
	if !strings.Contains(text, `'C:\ProgramData\scanagent\data'`) {
		t.Errorf("the example does not show a Windows path in single quotes")
	}
}

func TestExampleParses(t *testing.T) {
	t.Setenv(EnvSecret, "")
	text := strings.NewReplacer(`client_id = ""`, `client_id = "c"`, `client_secret = ""`, `client_secret = "s"`, `app_id = ""`, `app_id = "01"`).Replace(string(Example))
	if _, err := Parse([]byte(text), "config.toml"); err != nil {
		t.Errorf("the example with credentials filled in: got %v, want no problem", err)
	}
	// The commented-out [reader.map] works once uncommented.
	i := strings.Index(text, "# [reader.map]")
	if i < 0 {
		t.Fatal("the example has no commented-out [reader.map]")
	}
	text = text[:i] + strings.ReplaceAll(text[i:], "# ", "")
	cfg, err := Parse([]byte(text), "config.toml")
	if err != nil {
		t.Fatalf("the example with [reader.map] uncommented: got %v, want no problem", err)
	}
	if got := cfg.Readers[0].Map["学工号"]; got != "xgh" {
		t.Errorf(`[reader.map] "学工号": got %q, want "xgh"`, got)
	}
}
