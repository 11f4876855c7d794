package cli

import "github.com/spf13/cobra"

// NewCmdSessions is a placeholder until its verb is built.
func NewCmdSessions(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "sessions", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
