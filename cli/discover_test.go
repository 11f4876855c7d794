package cli

import (
	"slices"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	in := `# comment
DATABASE_URL=postgres://u:p@db:5432/app
export ANALYTICS_DATABASE_URL="postgresql://a:b@h/an"
QUOTED='single # not a comment'
INLINE=value # a comment
bad line
1BAD=x
`
	got := parseDotenv(strings.NewReader(in), ".env")
	want := map[string]string{
		"DATABASE_URL":           "postgres://u:p@db:5432/app",
		"ANALYTICS_DATABASE_URL": "postgresql://a:b@h/an",
		"QUOTED":                 "single # not a comment",
		"INLINE":                 "value",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d vars %+v, want %d", len(got), got, len(want))
	}
	for _, v := range got {
		if want[v.Name] != v.Value {
			t.Errorf("%s = %q, want %q", v.Name, v.Value, want[v.Name])
		}
	}
	if got[0].From != ".env:2" {
		t.Errorf("From = %q, want .env:2", got[0].From)
	}
}

func TestDiscoverConnections(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		dotenv []envVar
		want   []string // name=var,var
	}{
		{"none", []string{"HOME=/h", "DATABASE_URL=mysql://x"}, nil, nil},
		{"database_url named after db", []string{"DATABASE_URL=postgres://u:p@h:5432/app"}, nil, []string{"app=DATABASE_URL"}},
		{"prefixed", []string{"ANALYTICS_DATABASE_URL=postgres://u:p@h/an", "DATABASE_URL=postgres://u:p@h/main"},
			nil, []string{"main=DATABASE_URL", "analytics=ANALYTICS_DATABASE_URL"}},
		{"same url shares a tunnel", []string{"DATABASE_URL=postgres://h/app", "POSTGRES_URL=postgres://h/app"}, nil,
			[]string{"app=DATABASE_URL,POSTGRES_URL"}},
		{"env wins over .env", []string{"DATABASE_URL=postgres://h/fromenv"},
			[]envVar{{Name: "DATABASE_URL", Value: "postgres://h/fromfile", From: ".env:1"}}, []string{"fromenv=DATABASE_URL"}},
		{"from .env", nil, []envVar{{Name: "DATABASE_URL", Value: "postgres://h/app", From: ".env:1"}}, []string{"app=DATABASE_URL"}},
		{"name collision", []string{"DATABASE_URL=postgres://h1/db", "X_DATABASE_URL=postgres://h2/db2", "DB_DATABASE_URL=postgres://h3/x"}, nil,
			[]string{"db=DATABASE_URL", "db-2=DB_DATABASE_URL", "x=X_DATABASE_URL"}},
		{"pg set", []string{"PGHOST=db.internal", "PGDATABASE=shop", "PGPASSWORD=s3cret"}, nil, []string{"shop=PGHOST,PGPASSWORD,PGDATABASE"}},
		{"bare PGPASSWORD is nothing", []string{"PGPASSWORD=s3cret"}, nil, nil},
		{"guardrun's own vars are not upstreams", []string{"GUARDRUN_APP_DATABASE_URL=postgres://h/app"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := discoverConnections(environVars(tt.env), tt.dotenv)
			var names []string
			for _, d := range got {
				names = append(names, d.Name+"="+strings.Join(d.Env, ","))
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("got %v, want %v", names, tt.want)
			}
		})
	}
}

func TestDiscoverPGSetDSN(t *testing.T) {
	got := discoverConnections(environVars([]string{"PGHOST=h", "PGPORT=6543", "PGUSER=me", "PGPASSWORD=it's", "PGDATABASE=shop"}), nil)
	if len(got) != 1 {
		t.Fatalf("got %d connections", len(got))
	}
	want := `host=h port=6543 user=me password='it\'s' dbname=shop`
	if got[0].DSN != want {
		t.Errorf("DSN = %q, want %q", got[0].DSN, want)
	}
}

func TestAgentEnvironHidesRealUpstreams(t *testing.T) {
	parent := []string{
		"HOME=/home/jane",
		"DATABASE_URL=postgres://app:REALSECRET@db:5432/app",
		"PGPASSWORD=REALSECRET",
		"PGHOST=db",
		"LEGACY_URL=postgres://app:REALSECRET@db/app",
	}
	tunnels := []tunnelEnv{{
		Name: "app", URL: "postgres://guardrun:tunnelpw@127.0.0.1:5999/app?sslmode=disable",
		Host: "127.0.0.1", Port: 5999, User: "guardrun", Password: "tunnelpw", Database: "app",
		Env: []string{"DATABASE_URL"}, Hide: []string{"LEGACY_URL"}, Default: true,
	}}
	env := agentEnviron(parent, tunnels, "01abc")
	joined := strings.Join(env, "\n")
	if strings.Contains(joined, "REALSECRET") {
		t.Fatalf("real credential reached the agent:\n%s", joined)
	}
	for _, want := range []string{
		"HOME=/home/jane",
		"DATABASE_URL=postgres://guardrun:tunnelpw@127.0.0.1:5999/app?sslmode=disable",
		"GUARDRUN_APP_URL=postgres://guardrun:tunnelpw@127.0.0.1:5999/app?sslmode=disable",
		"PGHOST=127.0.0.1", "PGPORT=5999", "PGUSER=guardrun", "PGPASSWORD=tunnelpw", "PGDATABASE=app", "PGSSLMODE=disable",
		"GUARDRUN_SESSION=01abc",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in\n%s", want, joined)
		}
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GUARDRUN_") && (strings.Contains(k, "KEY") || strings.Contains(k, "SECRET") || strings.Contains(k, "TOKEN")) {
			t.Errorf("%s would be stripped by agents that drop KEY/SECRET/TOKEN variables", k)
		}
	}
	count := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "DATABASE_URL=") {
			count++
		}
	}
	if count != 1 {
		t.Errorf("DATABASE_URL set %d times", count)
	}
}
