//go:build tools

// tools.go pins the project's dependencies while the packages that use
// them are being written, so that go mod tidy keeps them. Removed once every
// dependency is imported by real code.
package cli

import (
	_ "cel.dev/cel-go/cel"
	_ "github.com/BurntSushi/toml"
	_ "github.com/charmbracelet/bubbles/textinput"
	_ "github.com/charmbracelet/bubbletea"
	_ "github.com/charmbracelet/lipgloss"
	_ "github.com/charmbracelet/x/vt"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/creack/pty"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/pganalyze/pg_query_go/v6"
	_ "github.com/pkg/browser"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/cobra/doc"
	_ "github.com/wasilibs/go-pgquery"
	_ "github.com/zalando/go-keyring"
	_ "go.uber.org/goleak"
	_ "golang.org/x/crypto/ssh/terminal"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "gopkg.in/yaml.v3"
)
