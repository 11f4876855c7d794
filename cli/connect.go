package cli

import "github.com/spf13/cobra"

// NewCmdConnect is a placeholder until its verb is built.
func NewCmdConnect(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "connect", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
