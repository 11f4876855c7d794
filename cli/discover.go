package cli

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// envVar is one NAME=value with where it came from.
type envVar struct {
	Name, Value string
	From        string // "env" or ".env:LINE"
}

// parseDotenv reads a .env file: NAME=value lines, optional `export `,
// single or double quotes, # comments. Malformed lines are skipped: a .env
// is the application's file, not ours to reject.
func parseDotenv(r io.Reader, file string) []envVar {
	var out []envVar
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		s = strings.TrimPrefix(s, "export ")
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok || !envNameRE.MatchString(k) {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = strings.TrimSpace(v[:i])
			}
		}
		out = append(out, envVar{Name: k, Value: v, From: fmt.Sprintf("%s:%d", file, line)})
	}
	return out
}

// pgURLVar reports whether a variable name is one guardrun looks at for
// PostgreSQL URLs when there is no configuration.
func pgURLVar(name string) bool {
	switch name {
	case "DATABASE_URL", "POSTGRES_URL", "POSTGRESQL_URL", "PG_URL":
		return true
	}
	return strings.HasSuffix(name, "_DATABASE_URL") && !strings.HasPrefix(name, "GUARDRUN_")
}

func isPostgresURL(v string) bool {
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

// pgEnvNames are libpq's environment variables that describe a server.
var pgEnvNames = []string{"PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGOPTIONS", "PGAPPNAME", "PGSERVICE", "PGPASSFILE", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS", "PGSSLNEGOTIATION", "PGCHANNELBINDING", "PGREQUIREAUTH"}

var pgEnvKeyword = map[string]string{
	"PGHOST": "host", "PGHOSTADDR": "hostaddr", "PGPORT": "port", "PGUSER": "user", "PGPASSWORD": "password",
	"PGDATABASE": "dbname", "PGSSLMODE": "sslmode", "PGSSLROOTCERT": "sslrootcert", "PGSSLCERT": "sslcert",
	"PGSSLKEY": "sslkey", "PGOPTIONS": "options", "PGCONNECT_TIMEOUT": "connect_timeout",
	"PGTARGETSESSIONATTRS": "target_session_attrs", "PGSERVICE": "service", "PGPASSFILE": "passfile",
}

// discovered is a connection found in the environment, with its real URL.
type discovered struct {
	Connection
	DSN string // the real upstream; never printed
}

// discoverConnections finds PostgreSQL upstreams in the environment and a
// .env file (the process environment wins over .env). Variables holding the
// same URL share one tunnel. The PG* set, when it names a server, is one
// more connection whose agent variables are the PG* names themselves.
func discoverConnections(env, dotenv []envVar) []discovered {
	seen := map[string]bool{}
	var vars []envVar
	for _, v := range env {
		seen[v.Name] = true
		vars = append(vars, v)
	}
	for _, v := range dotenv {
		if !seen[v.Name] {
			seen[v.Name] = true
			vars = append(vars, v)
		}
	}
	var out []discovered
	byURL := map[string]int{}
	var names []string
	byName := map[string]envVar{}
	for _, v := range vars {
		byName[v.Name] = v
		if pgURLVar(v.Name) && isPostgresURL(v.Value) {
			names = append(names, v.Name)
		}
	}
	// DATABASE_URL first, then the others in name order: the first
	// connection is the default one (PG* variables point at it).
	sort.SliceStable(names, func(i, j int) bool {
		if (names[i] == "DATABASE_URL") != (names[j] == "DATABASE_URL") {
			return names[i] == "DATABASE_URL"
		}
		return names[i] < names[j]
	})
	used := map[string]bool{}
	for _, n := range names {
		v := byName[n]
		if i, ok := byURL[v.Value]; ok {
			out[i].Env = append(out[i].Env, n)
			continue
		}
		name := uniqueName(connNameFor(n, v.Value), used)
		byURL[v.Value] = len(out)
		out = append(out, discovered{
			Connection: Connection{Name: name, Type: "postgres", Upstream: "env:" + n, Env: []string{n}, Source: sourceOf(v)},
			DSN:        v.Value,
		})
	}
	// The PG* set names a server when it has a host, a database or a
	// service; a bare PGPASSWORD is not a connection.
	if byName["PGHOST"].Value != "" || byName["PGDATABASE"].Value != "" || byName["PGSERVICE"].Value != "" {
		var kv []string
		var envs []string
		from := ""
		for _, n := range pgEnvNames {
			v, ok := byName[n]
			if !ok || v.Value == "" {
				continue
			}
			envs = append(envs, n)
			if from == "" {
				from = sourceOf(v)
			}
			if kw, ok := pgEnvKeyword[n]; ok {
				kv = append(kv, kw+"="+quoteKV(v.Value))
			}
		}
		dsn := strings.Join(kv, " ")
		dup := false
		for _, d := range out {
			if sameServer(d.DSN, byName) {
				dup = true
			}
		}
		if !dup {
			name := uniqueName(sanitizeConnName(byName["PGDATABASE"].Value, "pg"), used)
			out = append(out, discovered{
				Connection: Connection{Name: name, Type: "postgres", Upstream: "env:PG*", Env: envs, Source: from},
				DSN:        dsn,
			})
		}
	}
	return out
}

// sameServer reports whether a URL names the same server and database as
// the PG* variables, so that a project with both gets one tunnel.
func sameServer(dsn string, pg map[string]envVar) bool {
	u, err := url.Parse(dsn)
	if err != nil {
		return false
	}
	db := strings.TrimPrefix(u.Path, "/")
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	pgport := pg["PGPORT"].Value
	if pgport == "" {
		pgport = "5432"
	}
	return u.Hostname() == pg["PGHOST"].Value && port == pgport && db == pg["PGDATABASE"].Value
}

func sourceOf(v envVar) string {
	if v.From == "" || v.From == "env" {
		return "env " + v.Name
	}
	return v.From
}

func quoteKV(s string) string {
	if s != "" && !strings.ContainsAny(s, ` '\`) {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// connNameFor names a discovered connection: ANALYTICS_DATABASE_URL is
// "analytics"; DATABASE_URL is named after its database ("app"), else "db".
func connNameFor(varName, dsn string) string {
	if p, ok := strings.CutSuffix(varName, "_DATABASE_URL"); ok {
		return sanitizeConnName(strings.ToLower(p), "db")
	}
	if u, err := url.Parse(dsn); err == nil {
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			return sanitizeConnName(db, "db")
		}
	}
	return "db"
}

var nonNameRE = regexp.MustCompile(`[^a-z0-9_-]+`)

func sanitizeConnName(s, fallback string) string {
	s = nonNameRE.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(s, "-_")
	if len(s) > 32 {
		s = s[:32]
	}
	if !connNameRE.MatchString(s) {
		return fallback
	}
	return s
}

func uniqueName(name string, used map[string]bool) string {
	n := name
	for i := 2; used[n]; i++ {
		n = fmt.Sprintf("%s-%d", name, i)
	}
	used[n] = true
	return n
}

// tunnelEnv is what the agent gets for one open tunnel.
type tunnelEnv struct {
	Name     string   // connection name
	URL      string   // postgres://guardrun:PW@127.0.0.1:PORT/DB?sslmode=disable
	Host     string   // 127.0.0.1
	Port     int      //
	User     string   // per-session user
	Password string   // per-session password
	Database string   //
	Env      []string // variable names to set to URL (PG* names mean "set the PG* set")
	Hide     []string // variables that carry the real upstream and must not reach the agent
	Default  bool     // PG* variables point at this one
}

// guardrunVar is GUARDRUN_<NAME>_URL for a connection name. Names are
// upper-cased with - as _. guardrun's own variable names avoid KEY, SECRET
// and TOKEN, which some agents strip from a child's environment.
func guardrunVar(conn string) string {
	return "GUARDRUN_" + strings.ToUpper(strings.ReplaceAll(conn, "-", "_")) + "_URL"
}

// agentEnviron builds the agent's environment: the parent's, without the
// variables that carry a real upstream, plus the tunnels' URLs. Pure.
func agentEnviron(parent []string, tunnels []tunnelEnv, session string) []string {
	drop := map[string]bool{}
	set := map[string]string{}
	var order []string
	put := func(k, v string) {
		if _, ok := set[k]; !ok {
			order = append(order, k)
		}
		set[k] = v
	}
	for _, n := range pgEnvNames {
		drop[n] = true // the PG* set only ever describes a tunnel
	}
	for _, t := range tunnels {
		for _, h := range t.Hide {
			drop[h] = true
		}
		for _, e := range t.Env {
			if strings.HasPrefix(e, "PG") {
				continue // the PG* set is written below, for the default tunnel
			}
			put(e, t.URL)
		}
		put(guardrunVar(t.Name), t.URL)
	}
	for _, t := range tunnels {
		if !t.Default {
			continue
		}
		put("PGHOST", t.Host)
		put("PGPORT", fmt.Sprint(t.Port))
		put("PGUSER", t.User)
		put("PGPASSWORD", t.Password)
		put("PGDATABASE", t.Database)
		put("PGSSLMODE", "disable")
		break
	}
	if session != "" {
		put("GUARDRUN_SESSION", session)
	}
	out := make([]string, 0, len(parent)+len(order))
	for _, kv := range parent {
		k, _, _ := strings.Cut(kv, "=")
		if drop[k] {
			continue
		}
		if _, ok := set[k]; ok {
			continue
		}
		out = append(out, kv)
	}
	for _, k := range order {
		out = append(out, k+"="+set[k])
	}
	return out
}

// environVars turns os.Environ-style pairs into envVars.
func environVars(environ []string) []envVar {
	out := make([]envVar, 0, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out = append(out, envVar{Name: k, Value: v, From: "env"})
		}
	}
	return out
}
