package cli

import "github.com/spf13/cobra"

// NewCmdLogin is a placeholder until its verb is built.
func NewCmdLogin(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "login", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}

// NewCmdLogout is a placeholder until its verb is built.
func NewCmdLogout(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "logout", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}

// NewCmdWhoami is a placeholder until its verb is built.
func NewCmdWhoami(f *Factory) *cobra.Command {
	return &cobra.Command{Use: "whoami", Hidden: true, RunE: func(*cobra.Command, []string) error { return errNotBuilt }}
}
