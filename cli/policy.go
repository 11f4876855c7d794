package cli

import "github.com/spf13/cobra"

// NewCmdPolicy is a placeholder until its verb is built.
func NewCmdPolicy(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "policy", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
