package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ProjectFileName is the project's configuration file, committed by the team.
const ProjectFileName = "guardrun.yaml"

// ConfigError is a configuration problem at a place in a file.
type ConfigError struct {
	File string // as the user should read it (relative when short)
	Line int
	Msg  string
	Hint string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// LoadConfig finds and reads the project file (guardrun.yaml in the working
// directory or a parent, or $GUARDRUN_CONFIG) and the user's file
// ($XDG_CONFIG_HOME/guardrun/config.yaml). A missing file is not an error;
// a bad one is, with file and line.
func LoadConfig(f *Factory) (*Config, error) {
	cfg := &Config{}
	wd, err := f.Getwd()
	if err != nil {
		return nil, fmt.Errorf("cannot read the working directory: %w", err)
	}
	project := f.Getenv("GUARDRUN_CONFIG")
	if project != "" {
		if !filepath.IsAbs(project) {
			project = filepath.Join(wd, project)
		}
		if _, err := os.Stat(project); err != nil {
			return nil, &HintError{Err: fmt.Errorf("GUARDRUN_CONFIG names %s, which cannot be read: %w", project, errors.Unwrap(err)),
				Hint: "point GUARDRUN_CONFIG at a guardrun.yaml, or unset it"}
		}
	} else {
		project = findUp(wd, ProjectFileName)
	}
	user := filepath.Join(f.Paths().Config, "config.yaml")
	if _, err := os.Stat(user); err != nil {
		user = ""
	}
	if project != "" {
		cfg.ProjectFile = project
		if err := cfg.merge(project, displayName(wd, project), false); err != nil {
			return nil, err
		}
	}
	if user != "" {
		cfg.UserFile = user
		if err := cfg.merge(user, user, true); err != nil {
			return nil, err
		}
	}
	if cfg.Recording.Dir == "" {
		cfg.Recording.Dir = filepath.Join(f.Paths().Data, "sessions")
	}
	if cfg.Recording.OnError == "" {
		cfg.Recording.OnError = "stop"
	}
	return cfg, nil
}

// findUp returns the first dir/name walking up from dir, or "".
func findUp(dir, name string) string {
	for {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func displayName(wd, p string) string {
	if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	if rel, err := filepath.Rel(wd, p); err == nil && strings.Count(rel, "..") <= 3 {
		return rel
	}
	return p
}

// fileConfig is one file's raw shape; nodes keep line numbers for errors.
type fileConfig struct {
	Connections yaml.Node `yaml:"connections"`
	Policy      yaml.Node `yaml:"policy"`
	Auth        yaml.Node `yaml:"auth"`
	Recording   yaml.Node `yaml:"recording"`
}

var connNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func (c *Config) merge(path, name string, userFile bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return &ConfigError{File: name, Msg: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return yamlError(name, err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return &ConfigError{File: name, Line: root.Line, Msg: "want a mapping with connections, policy, auth and recording"}
	}
	if err := checkKeys(name, root, "connections", "policy", "auth", "recording"); err != nil {
		return err
	}
	var fc fileConfig
	if err := root.Decode(&fc); err != nil {
		return yamlError(name, err)
	}
	if fc.Connections.Kind != 0 {
		if err := c.mergeConnections(name, &fc.Connections, userFile); err != nil {
			return err
		}
	}
	if fc.Policy.Kind != 0 && c.Policy == nil {
		// The project's policy wins; a user file's policy applies only
		// where the project has none.
		node := fc.Policy
		c.Policy = &node
		c.PolicyFile = name
	}
	if fc.Auth.Kind != 0 {
		if err := checkKeys(name, &fc.Auth, "issuer", "client_id", "scopes", "audience", "required"); err != nil {
			return err
		}
		var a AuthConfig
		if err := fc.Auth.Decode(&a); err != nil {
			return yamlError(name, err)
		}
		if c.Auth.Issuer == "" {
			c.Auth = a
		}
		if a.Issuer != "" {
			if u, err := url.Parse(a.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return &ConfigError{File: name, Line: fc.Auth.Line, Msg: fmt.Sprintf("auth.issuer %q is not an http(s) URL", a.Issuer)}
			}
		}
	}
	if fc.Recording.Kind != 0 {
		if err := c.mergeRecording(name, &fc.Recording); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) mergeRecording(name string, n *yaml.Node) error {
	if err := checkKeys(name, n, "dir", "retention", "on_error"); err != nil {
		return err
	}
	var r struct {
		Dir       string `yaml:"dir"`
		Retention string `yaml:"retention"`
		OnError   string `yaml:"on_error"`
	}
	if err := n.Decode(&r); err != nil {
		return yamlError(name, err)
	}
	if r.Dir != "" {
		if !filepath.IsAbs(r.Dir) {
			r.Dir = filepath.Join(filepath.Dir(name), r.Dir)
		}
		c.Recording.Dir = r.Dir
	}
	if r.Retention != "" {
		d, err := ParseRetention(r.Retention)
		if err != nil {
			return &ConfigError{File: name, Line: valueLine(n, "retention"), Msg: err.Error()}
		}
		c.Recording.Retention = d
	}
	switch r.OnError {
	case "", "stop", "warn":
		if r.OnError != "" {
			c.Recording.OnError = r.OnError
		}
	default:
		return &ConfigError{File: name, Line: valueLine(n, "on_error"), Msg: fmt.Sprintf("unknown recording.on_error %q (want stop or warn)", r.OnError)}
	}
	return nil
}

// ParseRetention reads a duration that also understands days ("30d").
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err == nil && days >= 0 && fmt.Sprintf("%dd", days) == s {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q (want e.g. 30d or 720h)", s)
	}
	return d, nil
}

func (c *Config) mergeConnections(name string, n *yaml.Node, userFile bool) error {
	if n.Kind != yaml.SequenceNode {
		return &ConfigError{File: name, Line: n.Line, Msg: "connections: want a list of {name, type, upstream}"}
	}
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			return &ConfigError{File: name, Line: item.Line, Msg: "a connection is a mapping with name, type and upstream"}
		}
		if err := checkKeys(name, item, "name", "type", "upstream", "env"); err != nil {
			return err
		}
		var raw struct {
			Name     string    `yaml:"name"`
			Type     string    `yaml:"type"`
			Upstream string    `yaml:"upstream"`
			Env      yaml.Node `yaml:"env"`
		}
		if err := item.Decode(&raw); err != nil {
			return yamlError(name, err)
		}
		where := fmt.Sprintf("%s:%d", name, item.Line)
		if !connNameRE.MatchString(raw.Name) {
			return &ConfigError{File: name, Line: item.Line, Msg: fmt.Sprintf("connection name %q: want lower-case letters, digits, - and _ (starting with a letter)", raw.Name)}
		}
		switch raw.Type {
		case "postgres", "postgresql", "":
			raw.Type = "postgres"
		default:
			return &ConfigError{File: name, Line: valueLine(item, "type"), Msg: fmt.Sprintf("connection %s: unknown type %q (want postgres)", raw.Name, raw.Type)}
		}
		var env []string
		switch raw.Env.Kind {
		case 0:
		case yaml.ScalarNode:
			env = []string{raw.Env.Value}
		case yaml.SequenceNode:
			if err := raw.Env.Decode(&env); err != nil {
				return yamlError(name, err)
			}
		default:
			return &ConfigError{File: name, Line: raw.Env.Line, Msg: "env: want a variable name or a list of them"}
		}
		for _, v := range env {
			if !envNameRE.MatchString(v) {
				return &ConfigError{File: name, Line: raw.Env.Line, Msg: fmt.Sprintf("env: %q is not a variable name", v)}
			}
		}
		if raw.Upstream != "" {
			if err := checkUpstream(raw.Upstream, userFile); err != nil {
				err.File, err.Line = name, valueLine(item, "upstream")
				return err
			}
		}
		if i := c.connIndex(raw.Name); i >= 0 {
			// A later file (the user's) fills in or overrides the upstream
			// of a connection the project declared.
			if raw.Upstream != "" {
				c.Connections[i].Upstream = raw.Upstream
				c.Connections[i].Source = where
			}
			if len(env) > 0 {
				c.Connections[i].Env = env
			}
			if !userFile {
				return &ConfigError{File: name, Line: item.Line, Msg: fmt.Sprintf("connection %q is declared twice", raw.Name)}
			}
			continue
		}
		if raw.Upstream == "" {
			return &ConfigError{File: name, Line: item.Line, Msg: fmt.Sprintf("connection %s has no upstream", raw.Name),
				Hint: fmt.Sprintf("add upstream: env:DATABASE_URL (or set it for yourself in %s)", "your user config")}
		}
		c.Connections = append(c.Connections, Connection{Name: raw.Name, Type: raw.Type, Upstream: raw.Upstream, Env: env, Source: where})
	}
	return nil
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkUpstream accepts env:VAR and keyring:NAME everywhere, and a DSN in
// the project file only when it carries no password.
func checkUpstream(up string, userFile bool) *ConfigError {
	switch {
	case strings.HasPrefix(up, "env:"):
		if !envNameRE.MatchString(strings.TrimPrefix(up, "env:")) {
			return &ConfigError{Msg: fmt.Sprintf("upstream %q: env: must name a variable", up)}
		}
		return nil
	case strings.HasPrefix(up, "keyring:"):
		if strings.TrimPrefix(up, "keyring:") == "" {
			return &ConfigError{Msg: "upstream keyring: must name a keyring entry"}
		}
		return nil
	}
	if !looksLikeDSN(up) {
		return &ConfigError{Msg: "upstream: want env:VAR, keyring:NAME or a postgres:// URL"}
	}
	if !userFile && dsnHasPassword(up) {
		return &ConfigError{Msg: "upstream holds a password, and guardrun.yaml is committed",
			Hint: "use upstream: env:DATABASE_URL (the URL stays in your environment), or put the URL in your user config file"}
	}
	return nil
}

func looksLikeDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") || strings.Contains(s, "host=") || strings.Contains(s, "dbname=")
}

func dsnHasPassword(s string) bool {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Get("password") != ""
	}
	return regexp.MustCompile(`(^|\s)password\s*=`).MatchString(s)
}

func (c *Config) connIndex(name string) int {
	for i, cn := range c.Connections {
		if cn.Name == name {
			return i
		}
	}
	return -1
}

// checkKeys rejects keys of a mapping node that are not allowed.
func checkKeys(file string, n *yaml.Node, allowed ...string) error {
	if n.Kind != yaml.MappingNode {
		return &ConfigError{File: file, Line: n.Line, Msg: "want a mapping"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ok := false
		for _, a := range allowed {
			if k.Value == a {
				ok = true
				break
			}
		}
		if !ok {
			return &ConfigError{File: file, Line: k.Line, Msg: fmt.Sprintf("unknown field %q (want %s)", k.Value, strings.Join(allowed, ", "))}
		}
	}
	return nil
}

func valueLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Line
		}
	}
	return n.Line
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:unmarshal errors:\n\s*)?line (\d+): (.*)$`)

func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscanf(m[1], "%d", &line)
		return &ConfigError{File: file, Line: line, Msg: m[2]}
	}
	return &ConfigError{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}
