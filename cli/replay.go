package cli

import "github.com/spf13/cobra"

// NewCmdReplay is a placeholder until its verb is built.
func NewCmdReplay(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "replay", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
