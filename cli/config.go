package cli

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Config is guardrun.yaml (the project's, committed) merged with the user's
// file under $XDG_CONFIG_HOME/guardrun/config.yaml. Secrets never live in the
// project file: an upstream there is a reference (env:VAR, keyring:NAME).
type Config struct {
	ProjectFile string // absolute path of guardrun.yaml, "" if none
	UserFile    string // absolute path of the user's file, "" if none

	Connections []Connection
	Auth        AuthConfig
	Recording   RecordingConfig

	// Policy is the raw `policy:` node (rules, include, default, masking,
	// approval_timeout), parsed by the policy and mask packages so that
	// their errors carry file and line. Nil when no file has one.
	Policy     *yaml.Node
	PolicyFile string // file the Policy node came from
}

// Connection is one database guardrun can tunnel to.
type Connection struct {
	Name     string   // "app"
	Type     string   // "postgres"
	Upstream string   // env:VAR, keyring:NAME, or (user file only) a DSN
	Env      []string // variable names the agent gets the tunnel URL under
	Source   string   // where it was defined: "guardrun.yaml:12", "env DATABASE_URL", ".env:3"
}

// AuthConfig is the `auth:` section: the organisation's OIDC issuer.
type AuthConfig struct {
	Issuer   string   `yaml:"issuer"`
	ClientID string   `yaml:"client_id"`
	Scopes   []string `yaml:"scopes"`
	Audience string   `yaml:"audience"`
	Required bool     `yaml:"required"`
}

// RecordingConfig is the `recording:` section.
type RecordingConfig struct {
	Dir       string        // session store; default $XDG_DATA_HOME/guardrun/sessions
	Retention time.Duration // 0 = keep forever
	OnError   string        // "stop" (default) or "warn" when the store cannot be written
}
