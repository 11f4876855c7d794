package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// upstreamConn is a connection with its real upstream resolved. DSN is the
// real credential: it is handed to the tunnel and nowhere else.
type upstreamConn struct {
	Connection
	DSN      string
	Hide     []string // variables that carry the real upstream
	Host     string   // for people and the record: host, port, database
	Port     uint16
	Database string
	User     string
}

// Display is host:port/db, never a credential.
func (u upstreamConn) Display() string {
	return net.JoinHostPort(u.Host, strconv.Itoa(int(u.Port))) + "/" + u.Database
}

// secretLookup reads a keyring entry for upstream: keyring:NAME.
type secretLookup func(name string) (string, error)

// resolveConnections turns the configuration (or, without any, what the
// environment and ./.env hold) into upstreams guardrun can tunnel to.
func (f *Factory) resolveConnections(cfg *Config, secret secretLookup) ([]upstreamConn, error) {
	env := environVars(f.Environ())
	dotenv := f.readDotenv()
	lookup := func(name string) (string, bool) {
		for _, v := range env {
			if v.Name == name && v.Value != "" {
				return v.Value, true
			}
		}
		for _, v := range dotenv {
			if v.Name == name && v.Value != "" {
				return v.Value, true
			}
		}
		return "", false
	}
	var out []upstreamConn
	if len(cfg.Connections) == 0 {
		for _, d := range discoverConnections(env, dotenv) {
			u := upstreamConn{Connection: d.Connection, DSN: d.DSN, Hide: d.Env}
			if err := u.parse(); err != nil {
				return nil, err
			}
			out = append(out, u)
		}
		return out, nil
	}
	firstPG := true
	for _, c := range cfg.Connections {
		u := upstreamConn{Connection: c}
		switch {
		case strings.HasPrefix(c.Upstream, "env:"):
			name := strings.TrimPrefix(c.Upstream, "env:")
			v, ok := lookup(name)
			if !ok {
				return nil, &HintError{Err: fmt.Errorf("connection %s: %s is not set (upstream: env:%s, %s)", c.Name, name, name, c.Source),
					Hint: fmt.Sprintf("export %s=postgres://user:password@host:5432/db before running guardrun", name)}
			}
			u.DSN = v
			u.Hide = []string{name}
		case strings.HasPrefix(c.Upstream, "keyring:"):
			if secret == nil {
				return nil, fmt.Errorf("connection %s: the system keyring is not available", c.Name)
			}
			v, err := secret(strings.TrimPrefix(c.Upstream, "keyring:"))
			if err != nil {
				return nil, &HintError{Err: fmt.Errorf("connection %s: cannot read %s from the keyring: %w", c.Name, c.Upstream, err),
					Hint: "store the URL in the keyring under that name, or use upstream: env:VAR"}
			}
			u.DSN = v
		default:
			u.DSN = c.Upstream
		}
		if len(u.Env) == 0 && c.Type == "postgres" && firstPG {
			u.Env = []string{"DATABASE_URL"}
		}
		if c.Type == "postgres" {
			firstPG = false
		}
		if err := u.parse(); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// parse reads host, port and database from the DSN, for display and for
// the tunnel's database name.
func (u *upstreamConn) parse() error {
	pc, err := pgconn.ParseConfig(u.DSN)
	if err != nil {
		// pgconn's error quotes the DSN; never show it, it may hold a password.
		return &HintError{Err: fmt.Errorf("connection %s: the upstream URL (%s) cannot be read", u.Name, u.Source),
			Hint: "want postgres://user:password@host:5432/db?sslmode=... or libpq key=value settings"}
	}
	u.Host, u.Port, u.Database, u.User = pc.Host, pc.Port, pc.Database, pc.User
	if u.Database == "" {
		u.Database = u.User
	}
	return nil
}

// pickConnection finds NAME among the connections: a connection's name, or
// a type ("postgres") when exactly one connection has it. With no name and
// exactly one connection, that one.
func pickConnection(conns []upstreamConn, name string) (upstreamConn, error) {
	if len(conns) == 0 {
		return upstreamConn{}, &HintError{Err: errors.New("no database connection is configured or found in the environment"),
			Hint: "set DATABASE_URL, or add a connection to guardrun.yaml:\n  connections:\n    - name: app\n      type: postgres\n      upstream: env:DATABASE_URL"}
	}
	if name == "" {
		if len(conns) == 1 {
			return conns[0], nil
		}
		return upstreamConn{}, &HintError{Err: errors.New("more than one connection: name one"), Hint: "guardrun connect " + names(conns)}
	}
	for _, c := range conns {
		if c.Name == name {
			return c, nil
		}
	}
	var typed []upstreamConn
	for _, c := range conns {
		if c.Type == name || (name == "postgresql" && c.Type == "postgres") {
			typed = append(typed, c)
		}
	}
	switch len(typed) {
	case 1:
		return typed[0], nil
	case 0:
		return upstreamConn{}, &HintError{Err: fmt.Errorf("no connection named %q", name), Hint: "connections: " + names(conns)}
	}
	return upstreamConn{}, &HintError{Err: fmt.Errorf("%d connections are of type %s", len(typed), name), Hint: "name one: " + names(typed)}
}

func names(conns []upstreamConn) string {
	var n []string
	for _, c := range conns {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// readDotenv reads ./.env of the working directory, if any.
func (f *Factory) readDotenv() []envVar {
	wd, err := f.Getwd()
	if err != nil {
		return nil
	}
	fh, err := os.Open(filepath.Join(wd, ".env"))
	if err != nil {
		return nil
	}
	defer fh.Close()
	return parseDotenv(fh, ".env")
}

// credentialWarnings names files the agent can read that still hold a real
// upstream credential: a .env with one of the URLs, a .pgpass.
func (f *Factory) credentialWarnings(conns []upstreamConn) []*HintError {
	var out []*HintError
	for _, v := range f.readDotenv() {
		for _, c := range conns {
			if v.Value == c.DSN && strings.Contains(c.DSN, "@") {
				out = append(out, &HintError{
					Err:  fmt.Errorf(".env still holds the real %s; the agent can read it", v.Name),
					Hint: fmt.Sprintf("move the secret to your keyring: guardrun connections set %s --from-env %s, then upstream: keyring:%s in guardrun.yaml", c.Name, v.Name, c.Name),
				})
				break
			}
		}
	}
	wd, _ := f.Getwd()
	cands := []string{filepath.Join(wd, ".pgpass")}
	if p := f.Getenv("PGPASSFILE"); p != "" {
		cands = append(cands, p)
	}
	if h := f.Getenv("HOME"); h != "" {
		cands = append(cands, filepath.Join(h, ".pgpass"))
	}
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Size() > 0 {
			out = append(out, &HintError{
				Err:  fmt.Errorf("%s holds database passwords the agent can read", p),
				Hint: "an agent that finds it can bypass the tunnel; keep it out of the agent's reach (or run the agent as another user)",
			})
			break
		}
	}
	return out
}

// keyringLookup reads upstream: keyring:NAME entries from the secret store.
func (f *Factory) keyringLookup() secretLookup {
	return func(name string) (string, error) {
		st, err := f.secretStore(nil)
		if err != nil {
			return "", err
		}
		b, err := st.Get(upstreamSecret(name))
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}

// upstreamSecret is the secret-store name of upstream: keyring:NAME.
func upstreamSecret(name string) string { return "upstream." + name }
