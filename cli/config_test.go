package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testFactory returns a Factory rooted in a temp project dir with a clean
// environment.
func testFactory(t *testing.T, env map[string]string) (*Factory, string) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	proj := filepath.Join(dir, "proj")
	for _, d := range []string{home, proj} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if env == nil {
		env = map[string]string{}
	}
	env["HOME"] = home
	f := NewFactory(strings.NewReader(""), &strings.Builder{}, &strings.Builder{})
	f.Getenv = func(k string) string { return env[k] }
	f.Environ = func() []string {
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}
	f.Getwd = func() (string, error) { return proj, nil }
	return f, proj
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigNone(t *testing.T) {
	f, _ := testFactory(t, nil)
	cfg, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProjectFile != "" || len(cfg.Connections) != 0 || cfg.Policy != nil {
		t.Errorf("unexpected config %+v", cfg)
	}
	if !strings.HasSuffix(cfg.Recording.Dir, filepath.Join(".local", "share", "guardrun", "sessions")) {
		t.Errorf("default recording dir = %s", cfg.Recording.Dir)
	}
}

func TestLoadConfigProjectInParentAndUserOverride(t *testing.T) {
	f, proj := testFactory(t, nil)
	writeFile(t, filepath.Join(proj, "guardrun.yaml"), `
connections:
  - name: app
    type: postgres
    upstream: env:DATABASE_URL
  - name: analytics
    upstream: keyring:analytics
    env: [ANALYTICS_URL]
policy:
  default: allow
auth:
  issuer: https://login.example.com
  client_id: guardrun
  required: true
recording:
  retention: 30d
`)
	sub := filepath.Join(proj, "src", "deep")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	f.Getwd = func() (string, error) { return sub, nil }
	home := f.Getenv("HOME")
	writeFile(t, filepath.Join(home, ".config", "guardrun", "config.yaml"), `
connections:
  - name: app
    upstream: postgres://me:pw@localhost:5432/app
`)
	cfg, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProjectFile != filepath.Join(proj, "guardrun.yaml") {
		t.Errorf("ProjectFile = %s", cfg.ProjectFile)
	}
	if len(cfg.Connections) != 2 || cfg.Connections[0].Upstream != "postgres://me:pw@localhost:5432/app" {
		t.Errorf("connections = %+v", cfg.Connections)
	}
	if cfg.Connections[1].Env[0] != "ANALYTICS_URL" {
		t.Errorf("env = %v", cfg.Connections[1].Env)
	}
	if !cfg.Auth.Required || cfg.Auth.Issuer != "https://login.example.com" {
		t.Errorf("auth = %+v", cfg.Auth)
	}
	if cfg.Recording.Retention.Hours() != 720 {
		t.Errorf("retention = %v", cfg.Recording.Retention)
	}
	if cfg.Policy == nil || cfg.PolicyFile == "" {
		t.Errorf("policy node missing")
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level", "conections: []\n", `guardrun.yaml:1: unknown field "conections"`},
		{"password in project", "connections:\n  - name: app\n    upstream: postgres://u:hunter2@db/app\n", "guardrun.yaml:3: upstream holds a password"},
		{"bad type", "connections:\n  - name: app\n    type: mysql\n    upstream: env:X\n", `guardrun.yaml:3: connection app: unknown type "mysql"`},
		{"bad name", "connections:\n  - name: App!\n    upstream: env:X\n", `guardrun.yaml:2: connection name "App!"`},
		{"no upstream", "connections:\n  - name: app\n", "guardrun.yaml:2: connection app has no upstream"},
		{"duplicate", "connections:\n  - name: app\n    upstream: env:A\n  - name: app\n    upstream: env:B\n", `guardrun.yaml:4: connection "app" is declared twice`},
		{"syntax", "connections: [\n", "guardrun.yaml:"},
		{"bad retention", "recording:\n  retention: forever\n", `guardrun.yaml:2: bad duration "forever"`},
		{"bad on_error", "recording:\n  on_error: ignore\n", `guardrun.yaml:2: unknown recording.on_error "ignore"`},
		{"bad issuer", "auth:\n  issuer: login.example.com\n", "guardrun.yaml:2: auth.issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, proj := testFactory(t, nil)
			writeFile(t, filepath.Join(proj, "guardrun.yaml"), tt.yaml)
			_, err := LoadConfig(f)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a ConfigError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestPasswordInUserFileIsFine(t *testing.T) {
	f, _ := testFactory(t, nil)
	writeFile(t, filepath.Join(f.Getenv("HOME"), ".config", "guardrun", "config.yaml"),
		"connections:\n  - name: app\n    upstream: postgres://u:hunter2@db/app\n")
	cfg, err := LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Connections) != 1 {
		t.Fatalf("connections = %+v", cfg.Connections)
	}
}
