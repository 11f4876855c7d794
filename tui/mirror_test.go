package tui

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// BenchmarkMirrorWrite is the cost of keeping the virtual terminal in step
// with an agent that prints plain and coloured lines and scrolls.
func BenchmarkMirrorWrite(b *testing.B) {
	var sb strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&sb, "\x1b[32m%5d\x1b[m some output of the agent, with a path/to/file.go:%d and more text\r\n", i, i)
	}
	chunk := []byte(sb.String())
	m := newMirror(120, 40, io.Discard)
	defer m.close()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		m.write(chunk)
	}
}
