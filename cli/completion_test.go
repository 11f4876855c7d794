package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			f, _ := testFactory(t, nil)
			if code := run(context.Background(), f, []string{"completion", shell}); code != ExitOK {
				t.Fatalf("exit %d: %s", code, f.IO.ErrOut)
			}
			script := f.IO.Out.(*strings.Builder).String()
			if len(script) < 1000 || !strings.Contains(script, "guardrun") || !strings.Contains(script, "__complete") {
				t.Fatalf("%s script looks wrong (%d bytes)", shell, len(script))
			}
			sh, err := exec.LookPath(shell)
			if err != nil {
				if shell == "bash" {
					t.Fatal("bash is needed to check the bash script")
				}
				t.Logf("%s not installed: script generated, not parsed", shell)
				return
			}
			check := exec.Command(sh, "-n")
			if shell == "fish" {
				check = exec.Command(sh, "--no-execute")
			}
			check.Stdin = strings.NewReader(script)
			if out, err := check.CombinedOutput(); err != nil {
				t.Fatalf("%s does not parse its script: %v\n%s", shell, err, out)
			}
		})
	}
	f, _ := testFactory(t, nil)
	if code := run(context.Background(), f, []string{"completion", "powershell"}); code != ExitError {
		t.Fatalf("unknown shell: exit %d", code)
	}
}

// complete asks the command tree what it would complete for args, as the
// shell scripts do.
func complete(t *testing.T, f *Factory, args ...string) []string {
	t.Helper()
	if code := run(context.Background(), f, append([]string{cobra.ShellCompRequestCmd}, args...)); code != ExitOK {
		t.Fatalf("__complete %v: exit %d: %s", args, code, f.IO.ErrOut)
	}
	var out []string
	for _, line := range strings.Split(f.IO.Out.(*strings.Builder).String(), "\n") {
		if line != "" && !strings.HasPrefix(line, ":") {
			out = append(out, strings.SplitN(line, "\t", 2)[0])
		}
	}
	return out
}

func TestCompletionOfVerbs(t *testing.T) {
	f, _ := testFactory(t, nil)
	got := complete(t, f, "completion", "")
	if !slices.Equal(got, []string{"bash", "zsh", "fish"}) {
		t.Fatalf("completion shells: %v", got)
	}
	f, _ = testFactory(t, nil)
	if got := complete(t, f, "approvals", ""); !slices.Contains(got, "approve") || !slices.Contains(got, "deny") {
		t.Fatalf("approvals verbs: %v", got)
	}
}

func TestCompleteSessionIDs(t *testing.T) {
	f, _ := testFactory(t, nil)
	store := filepath.Join(f.Paths().Data, "sessions")
	for _, id := range []string{"01jd2y11", "01jd3k8v", "01jd3m2x"} {
		if err := os.MkdirAll(filepath.Join(store, id), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(store, "store.log"), nil, 0o600)
	got, dir := completeSessionIDs(f)(nil, nil, "01jd3")
	if !slices.Equal(got, []cobra.Completion{"01jd3m2x", "01jd3k8v"}) {
		t.Fatalf("session ids: %v", got)
	}
	if dir&cobra.ShellCompDirectiveNoFileComp == 0 {
		t.Fatal("session ids complete files too")
	}
	if got, _ := completeSessionIDs(f)(nil, []string{"01jd3m2x"}, ""); len(got) != 0 {
		t.Fatalf("second argument completed: %v", got)
	}
	exts, dir := completePolicyFiles(nil, nil, "")
	if !slices.Equal(exts, []cobra.Completion{"yaml", "yml"}) || dir != cobra.ShellCompDirectiveFilterFileExt {
		t.Fatalf("policy files: %v %v", exts, dir)
	}
}
