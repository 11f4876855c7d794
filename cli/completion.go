package cli

import "github.com/spf13/cobra"

// NewCmdCompletion is a placeholder until its verb is built.
func NewCmdCompletion(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "completion", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
