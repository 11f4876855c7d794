package cli

import (
	"os"
	"path/filepath"
	"strconv"
)

// Paths are guardrun's per-user directories (XDG base directories).
type Paths struct {
	Config  string // $XDG_CONFIG_HOME/guardrun
	Data    string // $XDG_DATA_HOME/guardrun
	State   string // $XDG_STATE_HOME/guardrun (logs)
	Runtime string // $XDG_RUNTIME_DIR/guardrun, or a 0700 dir under the temp dir
}

// Paths resolves the directories from the Factory's environment.
func (f *Factory) Paths() Paths {
	home := f.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	pick := func(env, fallback string) string {
		if v := f.Getenv(env); v != "" && filepath.IsAbs(v) {
			return filepath.Join(v, "guardrun")
		}
		return filepath.Join(home, fallback, "guardrun")
	}
	p := Paths{
		Config: pick("XDG_CONFIG_HOME", ".config"),
		Data:   pick("XDG_DATA_HOME", filepath.Join(".local", "share")),
		State:  pick("XDG_STATE_HOME", filepath.Join(".local", "state")),
	}
	if v := f.Getenv("XDG_RUNTIME_DIR"); v != "" && filepath.IsAbs(v) {
		p.Runtime = filepath.Join(v, "guardrun")
	} else {
		p.Runtime = filepath.Join(os.TempDir(), "guardrun-"+strconv.Itoa(os.Getuid()))
	}
	return p
}
