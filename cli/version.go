package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Stamped at release build time with -ldflags -X.
var (
	version = ""
	commit  = ""
	date    = ""
)

// BuildInfo is what `guardrun version` reports.
type BuildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	Date    string `json:"date,omitempty"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// Build reports the version stamped at build time, or what the module build
// info says for `go install` builds.
func Build() BuildInfo {
	b := BuildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.Date == "" {
					b.Date = s.Value
				}
			}
		}
	}
	if b.Version == "" || b.Version == "(devel)" {
		b.Version = "devel"
	}
	return b
}

type versionOptions struct {
	IO     *IOStreams
	Output string
}

// NewCmdVersion builds `guardrun version`.
func NewCmdVersion(f *Factory) *cobra.Command {
	opts := &versionOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print guardrun's version, commit, build date and Go version",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return versionRun(opts) },
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

func versionRun(opts *versionOptions) error {
	b := Build()
	switch opts.Output {
	case "json":
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(b)
	case "text", "":
		fmt.Fprintf(opts.IO.Out, "guardrun %s\n", b.Version)
		if b.Commit != "" {
			fmt.Fprintf(opts.IO.Out, "commit   %s\n", b.Commit)
		}
		if b.Date != "" {
			fmt.Fprintf(opts.IO.Out, "built    %s\n", b.Date)
		}
		fmt.Fprintf(opts.IO.Out, "go       %s %s/%s\n", b.Go, b.OS, b.Arch)
		return nil
	default:
		return &HintError{Err: fmt.Errorf("unknown output format %q", opts.Output), Hint: "use --output text or --output json"}
	}
}
