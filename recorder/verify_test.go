package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeSession records a small session with a cast and closes it.
func writeSession(t testing.TB, st *Store, statements int) *Session {
	t.Helper()
	s, err := st.Create(testStart())
	if err != nil {
		t.Fatal(err)
	}
	cw := s.Cast(80, 24)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Record(TunnelOpen{Connection: "app", ConnType: "postgres", Listen: "127.0.0.1:5000", Upstream: "db:5432/app"}))
	must(s.Record(ConnOpen{Connection: "app", ConnID: 1, Application: "psql"}))
	for i := 1; i <= statements; i++ {
		cw.WriteOutput([]byte(fmt.Sprintf("agent step %d\r\n", i)))
		dec := "allow"
		if i%3 == 0 {
			dec = "deny"
		}
		must(s.Record(Statement{Connection: "app", ConnID: 1, Seq: uint64(i), SQL: fmt.Sprintf("SELECT %d", i), Kind: "select", Decision: dec}))
		must(s.Record(Result{Connection: "app", ConnID: 1, Seq: uint64(i), Tag: "SELECT 1", Rows: 1, Masked: map[string]int{"email": 2}}))
		must(s.Sync()) // one checkpoint per statement
	}
	must(s.Close(0))
	return s
}

func signedStore(t testing.TB) *Store {
	signer, err := DeviceSigner(memKeys{})
	if err != nil {
		t.Fatal(err)
	}
	return testStore(t, StoreOptions{Signer: signer})
}

func verifyOK(t *testing.T, st *Store, id string) *Report {
	t.Helper()
	rep, err := st.Verify(id)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != nil {
		t.Fatalf("verify: %v", rep.Err)
	}
	return rep
}

func TestVerifySealedSession(t *testing.T) {
	st := signedStore(t)
	s := writeSession(t, st, 6)
	rep := verifyOK(t, st, ShortID(s.ID()))
	if rep.State != StateSealed || !rep.Signed || rep.Checkpoints < 6 || rep.CastBound != rep.CastBytes || rep.CastBytes == 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Statements != 6 || rep.Denied != 2 || rep.Masked != 12 || rep.Who != "jane@acme.dev" || rep.Clients != 1 {
		t.Fatalf("summary %+v", rep.Summary)
	}
	if _, err := st.VerifyLog(); err != nil {
		t.Fatal(err)
	}
}

// lines reads events.jsonl as lines (with newlines).
func lines(t *testing.T, dir string) [][]byte {
	data, err := os.ReadFile(filepath.Join(dir, EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}

func writeLines(t *testing.T, dir string, ls [][]byte) {
	if err := os.WriteFile(filepath.Join(dir, EventsFile), bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string, other string)
		file   string
		line   int
		what   string
	}{
		{"flip a byte", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			n := slices.IndexFunc(ls, func(l []byte) bool { return bytes.Contains(l, []byte("SELECT 1")) })
			if n != 4 {
				t.Fatalf("statement 1 on line %d, want 5", n+1)
			}
			ls[n] = bytes.Replace(ls[n], []byte("SELECT 1"), []byte("SELECT 2"), 1)
			writeLines(t, dir, ls)
		}, EventsFile, 5, "was changed after it was written"},
		{"reformat a line", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			ls[2] = bytes.Replace(ls[2], []byte(`","`), []byte(`", "`), 1)
			writeLines(t, dir, ls)
		}, EventsFile, 3, "not in canonical form"},
		{"delete a line", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			writeLines(t, dir, append(ls[:5:5], ls[6:]...))
		}, EventsFile, 6, "deleted or moved"},
		{"duplicate a line", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			out := append([][]byte{}, ls[:7]...)
			out = append(out, ls[6])
			writeLines(t, dir, append(out, ls[7:]...))
		}, EventsFile, 8, "duplicates line 7"},
		{"reorder lines", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			ls[5], ls[6] = ls[6], ls[5]
			writeLines(t, dir, ls)
		}, EventsFile, 6, "deleted or moved"},
		{"truncate", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			writeLines(t, dir, ls[:len(ls)-3])
		}, EventsFile, 0, "truncated"},
		{"truncate and delete the seal", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			writeLines(t, dir, ls[:len(ls)-3])
			os.Remove(filepath.Join(dir, SealFile))
		}, SealFile, 0, "was deleted"},
		{"edit the seal", func(t *testing.T, dir, _ string) {
			data, _ := os.ReadFile(filepath.Join(dir, SealFile))
			data = bytes.Replace(data, []byte(`"format":1`), []byte(`"format":2`), 1)
			os.WriteFile(filepath.Join(dir, SealFile), data, 0o600)
		}, SealFile, 0, "bad signature"},
		{"bad signature", func(t *testing.T, dir, _ string) {
			data, _ := os.ReadFile(filepath.Join(dir, SealFile))
			i := bytes.Index(data, []byte(`"signature":"`)) + len(`"signature":"`)
			if data[i] == 'a' {
				data[i] = 'b'
			} else {
				data[i] = 'a'
			}
			os.WriteFile(filepath.Join(dir, SealFile), data, 0o600)
		}, SealFile, 0, "bad signature"},
		{"alter the cast", func(t *testing.T, dir, _ string) {
			data, _ := os.ReadFile(filepath.Join(dir, CastFile))
			data = bytes.Replace(data, []byte("agent step 2"), []byte("agent step X"), 1)
			os.WriteFile(filepath.Join(dir, CastFile), data, 0o600)
		}, CastFile, 0, "does not match the checkpoint"},
		{"swap in another session's cast", func(t *testing.T, dir, other string) {
			data, _ := os.ReadFile(filepath.Join(other, CastFile))
			os.WriteFile(filepath.Join(dir, CastFile), data, 0o600)
		}, CastFile, 0, "does not match"},
		{"swap in another session's events", func(t *testing.T, dir, other string) {
			data, _ := os.ReadFile(filepath.Join(other, EventsFile))
			os.WriteFile(filepath.Join(dir, EventsFile), data, 0o600)
		}, EventsFile, 1, "belongs to session"},
		{"torn line in a sealed session", func(t *testing.T, dir, _ string) {
			ls := lines(t, dir)
			last := ls[len(ls)-1]
			ls = append(ls, last[:20])
			writeLines(t, dir, ls)
		}, EventsFile, 0, "cut short although the session was sealed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := signedStore(t)
			s := writeSession(t, st, 6)
			other := writeSession(t, st, 6)
			verifyOK(t, st, s.ID())
			tc.tamper(t, s.Dir(), other.Dir())
			rep, err := st.Verify(s.ID())
			if err != nil {
				t.Fatal(err)
			}
			var te *TamperError
			if !errors.As(rep.Err, &te) {
				t.Fatalf("not detected: %+v", rep)
			}
			if te.File != tc.file || (tc.line != 0 && te.Line != tc.line) || !strings.Contains(te.What, tc.what) {
				t.Fatalf("got %q (file %s line %d), want %s line %d %q", te.Error(), te.File, te.Line, tc.file, tc.line, tc.what)
			}
			if rep.State != StateTampered {
				t.Fatalf("state %s", rep.State)
			}
			// The other session is untouched.
			verifyOK(t, st, other.ID())
		})
	}
}

func TestTornTailIsAbnormalNotTampered(t *testing.T) {
	st := signedStore(t)
	s, err := st.Create(testStart())
	if err != nil {
		t.Fatal(err)
	}
	s.Record(Statement{Connection: "app", SQL: "SELECT 1", Decision: "allow"})
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: stop the writer without sealing, then a torn write.
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	s.events.Close()
	f, _ := os.OpenFile(filepath.Join(s.Dir(), EventsFile), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"conn_id":0,"connection":"app","decision":"al`)
	f.Close()
	rep := verifyOK(t, st, s.ID())
	if rep.State != StateAbnormal || !rep.TornTail || rep.Lines != 2 {
		t.Fatalf("report %+v", rep)
	}
}

func TestUnsignedSealVerifiesAsUnsigned(t *testing.T) {
	st := testStore(t, StoreOptions{})
	s := writeSession(t, st, 2)
	rep := verifyOK(t, st, s.ID())
	if rep.State != StateSealed || rep.Signed {
		t.Fatalf("report %+v", rep)
	}
}

func TestFindPrefix(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), step: time.Millisecond}
	st := testStore(t, StoreOptions{Now: clock.Now})
	a, _ := st.Create(testStart())
	b, _ := st.Create(testStart())
	a.Close(0)
	b.Close(0)
	if a.ID()[:8] != b.ID()[:8] || a.ID() >= b.ID() {
		t.Fatalf("ids %s %s: want a shared 8-char prefix, sorted", a.ID(), b.ID())
	}
	if _, err := st.Find(a.ID()[:8]); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Find(prefix) = %v", err)
	}
	if id, err := st.Find(strings.ToUpper(a.ID()[:20])); err != nil || id != a.ID() {
		t.Fatalf("Find = %s, %v", id, err)
	}
	if _, err := st.Find("zzzzzzzz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find(missing) = %v", err)
	}
	if _, err := st.Find("../etc"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find(path) = %v", err)
	}
}
