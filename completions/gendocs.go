//go:build gendocs

// gendocs writes guardrun's shell completion scripts and man pages from the
// command tree, for the release archives and packages:
//
//	go run -tags gendocs ./completions/gendocs.go DIR
//
// writes DIR/guardrun.bash, DIR/guardrun.zsh, DIR/guardrun.fish and
// DIR/man/guardrun*.1 (and .1.gz copies for the deb and rpm). goreleaser runs it as a before-hook; `go generate
// ./cli` runs it for development. Output is reproducible: the man pages are
// dated from SOURCE_DATE_EPOCH when it is set.
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/guardrun/guardrun/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run -tags gendocs ./completions/gendocs.go DIR")
		os.Exit(2)
	}
	if err := gen(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func gen(dir string) error {
	var out, errOut bytes.Buffer
	root := cli.NewCmdRoot(cli.NewFactory(strings.NewReader(""), &out, &errOut))
	root.DisableAutoGenTag = true

	if err := os.MkdirAll(filepath.Join(dir, "man"), 0o755); err != nil {
		return err
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out.Reset()
		root.SetArgs([]string{"completion", shell})
		if err := root.Execute(); err != nil {
			return fmt.Errorf("completion %s: %w: %s", shell, err, errOut.String())
		}
		if out.Len() == 0 {
			return fmt.Errorf("completion %s: empty script", shell)
		}
		if err := os.WriteFile(filepath.Join(dir, "guardrun."+shell), out.Bytes(), 0o644); err != nil {
			return err
		}
	}

	date := time.Now()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			date = time.Unix(n, 0).UTC()
		}
	}
	manDir := filepath.Join(dir, "man")
	old, _ := filepath.Glob(filepath.Join(manDir, "*.1*"))
	for _, f := range old {
		os.Remove(f)
	}
	hdr := &doc.GenManHeader{Title: "GUARDRUN", Section: "1", Source: "guardrun", Manual: "guardrun manual", Date: &date}
	if err := doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{Header: hdr, Path: manDir, CommandSeparator: "-"}); err != nil {
		return err
	}
	pages, err := filepath.Glob(filepath.Join(manDir, "*.1"))
	if err != nil {
		return err
	}
	for _, page := range pages {
		if err := gzipFile(page); err != nil {
			return err
		}
	}
	return nil
}

// gzipFile writes path.gz with no name or time in the header, so the
// packages are reproducible.
func gzipFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path+".gz", buf.Bytes(), 0o644)
}
