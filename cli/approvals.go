package cli

import "github.com/spf13/cobra"

// NewCmdApprovals is a placeholder until its verb is built.
func NewCmdApprovals(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "approvals", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
