package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// The release ships completion scripts and man pages generated from this
// command tree (completions/gendocs.go, run by goreleaser's before-hook).
//go:generate go run -tags gendocs ../completions/gendocs.go ../completions

// NewCmdCompletion builds `guardrun completion bash|zsh|fish`.
func NewCmdCompletion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Prints a script that makes your shell complete guardrun's commands, flags,
connection names, session ids and policy files.

  bash   echo 'source <(guardrun completion bash)' >> ~/.bashrc
         (needs the bash-completion package; Homebrew and the deb/rpm
         packages install the script for you)
  zsh    guardrun completion zsh > "${fpath[1]}/_guardrun"
         (then start a new shell; "autoload -U compinit; compinit" must be in ~/.zshrc)
  fish   guardrun completion fish > ~/.config/fish/completions/guardrun.fish`,
		ValidArgs:             []string{"bash", "zsh", "fish"},
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeCompletion(cmd.Root(), args[0], f.IO.Out)
		},
	}
}

// writeCompletion writes root's completion script for shell.
func writeCompletion(root *cobra.Command, shell string, w interface{ Write([]byte) (int, error) }) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	}
	return &HintError{Err: fmt.Errorf("no completion for shell %q", shell), Hint: "use bash, zsh or fish"}
}

// Dynamic completions, for the verbs that take these arguments. They never
// print errors: a completion that cannot be computed offers nothing.
// (Connection names: completeConnections, next to `guardrun connect`.)

// completeSessionIDs offers the ids of recorded sessions, newest first. It
// lists the store's directory without verifying anything, to stay fast.
func completeSessionIDs(f *Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		dir := ""
		if cfg, err := f.Config(); err == nil && cfg != nil {
			dir = cfg.Recording.Dir
		}
		if dir == "" {
			dir = f.Paths().Data + string(os.PathSeparator) + "sessions"
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && strings.HasPrefix(e.Name(), toComplete) {
				out = append(out, e.Name())
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	}
}

// completePolicyFiles offers YAML files (guardrun.yaml and policy files).
func completePolicyFiles(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}
