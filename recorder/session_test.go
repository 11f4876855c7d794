package recorder

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var fakeEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock advances by step at every call; the writer goroutine reads it
// too.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type memKeys map[string][]byte

func (m memKeys) Get(n string) ([]byte, error) { return m[n], nil }
func (m memKeys) Set(n string, d []byte) error { m[n] = d; return nil }

func testStore(t testing.TB, opts StoreOptions) *Store {
	t.Helper()
	st, err := OpenStore(filepath.Join(t.TempDir(), "sessions"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func testStart() Start {
	return Start{
		Identity: Identity{Email: "jane@acme.dev", Subject: "jane", Method: "local"},
		Command:  []string{"claude", "--print"},
		Agent:    "claude",
		Host:     "dev1",
		Version:  "test",
	}
}

func TestRecordWritesAChainedCanonicalLog(t *testing.T) {
	signer, err := DeviceSigner(memKeys{})
	if err != nil {
		t.Fatal(err)
	}
	st := testStore(t, StoreOptions{Signer: signer})
	s, err := st.Create(testStart())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ID()) != IDLen || !validID(s.ID()) {
		t.Fatalf("id %q", s.ID())
	}
	cw := s.Cast(80, 24)
	cw.WriteOutput([]byte("hello \xe2\x82"))
	cw.WriteOutput([]byte("\xac world\r\n"))
	cw.WriteResize(100, 30)
	cw.WriteMarker("statement 1")
	for _, ev := range []Event{
		TunnelOpen{Connection: "app", ConnType: "postgres", Listen: "127.0.0.1:5000", Upstream: "db:5432/app"},
		ConnOpen{Connection: "app", ConnID: 1, Application: "psql"},
		Statement{Connection: "app", ConnID: 1, Seq: 1, SQL: "SELECT 'é\"\n'", Kind: "select", Decision: "allow", Rule: "default"},
		Result{Connection: "app", ConnID: 1, Seq: 1, Tag: "SELECT 1", Rows: 1, Duration: 1500 * time.Microsecond, Masked: map[string]int{"email": 1}},
	} {
		if err := s.Record(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(Warning{Message: "late"}); err != ErrClosed {
		t.Fatalf("Record after Close = %v", err)
	}
	f, err := os.Open(filepath.Join(s.Dir(), EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	prev := GenesisPrev
	n := 0
	var types []string
	for sc.Scan() {
		n++
		pl, problem := parseChainLine(sc.Bytes())
		if problem != "" {
			t.Fatalf("line %d %s: %s", n, problem, sc.Text())
		}
		if pl.Prev != prev || pl.Seq != uint64(n) {
			t.Fatalf("line %d: prev/seq broken", n)
		}
		prev = pl.Hash
		types = append(types, pl.Type)
	}
	// The writer decides when checkpoints fall; the rest keeps Record's order.
	got := strings.Join(types, " ")
	want := "session_start cast_start tunnel_open conn_open statement result session_end"
	if strings.ReplaceAll(got, " checkpoint", "") != want || !strings.Contains(got, "checkpoint") {
		t.Fatalf("types:\n got %s\nwant %s (with checkpoints)", got, want)
	}
	cast, err := os.ReadFile(filepath.Join(s.Dir(), CastFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cast, []byte(`"o","\u20ac world\r\n"]`)) {
		t.Fatalf("cast:\n%s", cast)
	}
	for _, name := range []string{EventsFile, CastFile, SealFile} {
		fi, err := os.Stat(filepath.Join(s.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", name, fi.Mode())
		}
	}
	if fi, _ := os.Stat(s.Dir()); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode())
	}
}

func testKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

// Output right before Close is bound by a checkpoint that precedes the end.
func TestCloseRightAfterOutput(t *testing.T) {
	st := signedStore(t)
	for range 20 {
		s, err := st.Create(testStart())
		if err != nil {
			t.Fatal(err)
		}
		cw := s.Cast(80, 24)
		s.Record(Statement{Connection: "app", SQL: "SELECT 1", Decision: "allow"})
		cw.WriteOutput([]byte("last words\r\n"))
		if err := s.Close(0); err != nil {
			t.Fatal(err)
		}
		rep := verifyOK(t, st, s.ID())
		if rep.State != StateSealed {
			t.Fatalf("state %s", rep.State)
		}
	}
}
