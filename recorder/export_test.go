package recorder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
)

func exportBundle(t *testing.T, st *Store, id string) []byte {
	t.Helper()
	var buf bytes.Buffer
	rep, err := st.Export(id, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != nil {
		t.Fatal(rep.Err)
	}
	return buf.Bytes()
}

func TestBundleVerifies(t *testing.T) {
	st := signedStore(t)
	s := writeSession(t, st, 4)
	bundle := exportBundle(t, st, s.ID())
	rep, err := VerifyBundle(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != nil || rep.State != StateSealed || !rep.Signed || rep.ID != s.ID() {
		t.Fatalf("report %+v", rep)
	}
}

// rewriteBundle applies edit to the bundle's files and packs them again.
func rewriteBundle(t *testing.T, bundle []byte, edit func(files map[string][]byte)) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var top string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeDir {
			top = strings.TrimSuffix(h.Name, "/")
			continue
		}
		data, _ := io.ReadAll(tr)
		files[filepath.Base(h.Name)] = data
	}
	edit(files)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: top + "/", Mode: 0o700})
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + name, Mode: 0o600, Size: int64(len(data))})
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

func TestBundleTamperingIsDetected(t *testing.T) {
	st := signedStore(t)
	s := writeSession(t, st, 4)
	bundle := exportBundle(t, st, s.ID())
	cases := map[string]struct {
		edit func(map[string][]byte)
		file string
	}{
		"edited event, sums regenerated": {func(f map[string][]byte) {
			f[EventsFile] = bytes.Replace(f[EventsFile], []byte("SELECT 2"), []byte("SELECT 9"), 1)
			f[BundleSums] = sums(f)
		}, EventsFile},
		"cast edited": {func(f map[string][]byte) {
			f[CastFile] = bytes.Replace(f[CastFile], []byte("agent step 4"), []byte("agent step 5"), 1)
		}, CastFile},
		"readme edited": {func(f map[string][]byte) {
			f[BundleReadme] = append(f[BundleReadme], "trust me\n"...)
		}, BundleReadme},
		"other key": {func(f map[string][]byte) {
			f[BundlePublicKey] = []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n")
			f[BundleSums] = sums(f)
		}, BundlePublicKey},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rep, err := VerifyBundle(bytes.NewReader(rewriteBundle(t, bundle, tc.edit)))
			if err != nil {
				t.Fatal(err)
			}
			var te *TamperError
			if !errors.As(rep.Err, &te) || te.File != tc.file {
				t.Fatalf("got %v, want a problem in %s", rep.Err, tc.file)
			}
		})
	}
	if _, err := VerifyBundle(strings.NewReader("not a bundle")); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestBundleVerifiesWithStandardTools runs the commands VERIFY.txt gives.
func TestBundleVerifiesWithStandardTools(t *testing.T) {
	for _, tool := range []string{"tar", "sha256sum", "openssl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required under CI=true: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	st := signedStore(t)
	s := writeSession(t, st, 3)
	dir := t.TempDir()
	bundlePath := filepath.Join(dir, "b.tar.gz")
	os.WriteFile(bundlePath, exportBundle(t, st, s.ID()), 0o600)
	run := func(wantOK bool, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = filepath.Join(dir, "guardrun-session-"+s.ID())
		if name == "tar" {
			cmd.Dir = dir
		}
		out, err := cmd.CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(true, "tar", "xzf", "b.tar.gz")
	readme, err := os.ReadFile(filepath.Join(dir, "guardrun-session-"+s.ID(), BundleReadme))
	if err != nil {
		t.Fatal(err)
	}
	run(true, "sha256sum", "-c", "--quiet", BundleSums)
	run(true, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", BundlePublicKey, "-rawin", "-in", BundleSigned, "-sigfile", BundleSignature)
	// The chain check from VERIFY.txt, as written there.
	script := between(t, string(readme), "python3 -c '", "print(\"chain ok:\", n, \"events\")'")
	script = dedent(script) + "print(\"chain ok:\", n, \"events\")"
	run(true, "python3", "-c", script)
	// And the same commands fail on an edited copy.
	evPath := filepath.Join(dir, "guardrun-session-"+s.ID(), EventsFile)
	ev, _ := os.ReadFile(evPath)
	os.WriteFile(evPath, bytes.Replace(ev, []byte("SELECT 2"), []byte("SELECT 3"), 1), 0o600)
	run(false, "sha256sum", "-c", "--quiet", BundleSums)
	run(false, "python3", "-c", script)
	sig := filepath.Join(dir, "guardrun-session-"+s.ID(), BundleSigned)
	sb, _ := os.ReadFile(sig)
	os.WriteFile(sig, bytes.Replace(sb, []byte(`"format":1`), []byte(`"format":2`), 1), 0o600)
	run(false, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", BundlePublicKey, "-rawin", "-in", BundleSigned, "-sigfile", BundleSignature)
}

func between(t *testing.T, s, from, to string) string {
	i := strings.LastIndex(s, from)
	j := strings.Index(s, to)
	if i < 0 || j < i {
		t.Fatalf("VERIFY.txt lacks the chain check")
	}
	return s[i+len(from) : j]
}

// dedent removes the indentation VERIFY.txt adds to continuation lines.
func dedent(s string) string {
	ls := strings.Split(s, "\n")
	for i := 1; i < len(ls); i++ {
		ls[i] = strings.TrimPrefix(ls[i], "       ")
	}
	return strings.Join(ls, "\n")
}

func TestCastPlaysInAsciinema(t *testing.T) {
	if _, err := exec.LookPath("asciinema"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("asciinema is required under CI=true: %v", err)
		}
		t.Skip("asciinema not installed (apt-get install asciinema)")
	}
	st := testStore(t, StoreOptions{})
	s, _ := st.Create(testStart())
	cw := s.Cast(80, 24)
	cw.WriteOutput([]byte("\x1b[1mbold\x1b[0m caf\xc3"))
	cw.WriteOutput([]byte("\xa9 \xff\r\n"))
	cw.WriteResize(100, 40)
	cw.WriteMarker("statement 1")
	cw.WriteOutput([]byte("\U0001F600 done\r\n"))
	s.Close(0)
	// asciinema cat opens /dev/tty: give it a terminal.
	cmd := exec.Command("asciinema", "cat", filepath.Join(s.Dir(), CastFile))
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(tty) // EIO when the child exits
	tty.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, out)
	}
	want := "\x1b[1mbold\x1b[0m café \uFFFD\r\n\U0001F600 done\r\n"
	if string(out) != want {
		t.Fatalf("asciinema cat printed %q, want %q", out, want)
	}
}
