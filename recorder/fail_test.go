package recorder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func failingStore(t *testing.T, mode FailMode) (*Store, *atomic.Bool, *atomic.Int32) {
	var full atomic.Bool
	var calls atomic.Int32
	st := testStore(t, StoreOptions{
		OnError:   mode,
		OnFailure: func(string, error) { calls.Add(1) },
	})
	st.fault = func(string) error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return nil
	}
	return st, &full, &calls
}

func TestFullDiskStopsTheSession(t *testing.T) {
	st, full, calls := failingStore(t, FailStop)
	s, err := st.Create(testStart())
	if err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if err := s.Record(Warning{Message: "one"}); err != nil {
		t.Fatal(err) // accepted: the failure is not known yet
	}
	if err := s.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync = %v, want ENOSPC", err)
	}
	err = s.Record(Warning{Message: "two"})
	if !errors.Is(err, ErrStopped) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Record after failure = %v", err)
	}
	if !errors.Is(s.Err(), syscall.ENOSPC) || calls.Load() != 1 {
		t.Fatalf("Err = %v, OnFailure calls %d", s.Err(), calls.Load())
	}
	full.Store(false)
	if err := s.Close(1); err == nil {
		t.Fatal("Close sealed a session whose store failed")
	}
	rep := verifyOK(t, st, s.ID())
	if rep.State != StateAbnormal {
		t.Fatalf("state %s", rep.State)
	}
}

func TestFullDiskWarnKeepsEventsAndWritesThemLater(t *testing.T) {
	st, full, calls := failingStore(t, FailWarn)
	s, err := st.Create(testStart())
	if err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	for i := range 50 {
		if err := s.Record(Statement{Connection: "app", Seq: uint64(i), SQL: "SELECT 1", Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync = %v", err)
	}
	if err := s.Record(Warning{Message: "still accepted"}); err != nil {
		t.Fatalf("Record while failing in warn mode = %v", err)
	}
	full.Store(false)
	if err := s.Close(0); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 { // failed, recovered
		t.Fatalf("OnFailure calls %d", calls.Load())
	}
	rep := verifyOK(t, st, s.ID())
	if rep.State != StateSealed || rep.Statements != 50 {
		t.Fatalf("report %+v", rep)
	}
	var warned bool
	for r, err := range st.Read(s.ID()) {
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := r.Event.(*Warning); ok && w.Message != "still accepted" {
			warned = true
		}
	}
	if !warned {
		t.Fatal("no warning about the outage in the record")
	}
}

func TestPruneIsLoggedInTheStoreChain(t *testing.T) {
	clock := &fakeClock{t: fakeEpoch, step: 0}
	st := testStore(t, StoreOptions{Now: clock.Now, User: "jane"})
	old, _ := st.Create(testStart())
	old.Close(0)
	clock.Add(40 * 24 * time.Hour)
	young, _ := st.Create(testStart())
	young.Close(0)
	clock.Add(time.Hour)
	removed, err := st.Prune(30 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != old.ID() {
		t.Fatalf("removed %v", removed)
	}
	if _, err := st.Find(old.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatal("pruned session still there")
	}
	verifyOK(t, st, young.ID())
	log, err := st.VerifyLog()
	if err != nil {
		t.Fatal(err)
	}
	last := log[len(log)-1]
	if last.Type != "prune" || len(last.Sessions) != 1 || last.Sessions[0] != old.ID() {
		t.Fatalf("store log %+v", log)
	}
	// Hiding the prune breaks the store chain.
	path := filepath.Join(st.Dir(), StoreLog)
	data, _ := os.ReadFile(path)
	ls := bytes.SplitAfter(data, []byte("\n"))
	os.WriteFile(path, bytes.Join(ls[:len(ls)-2], nil), 0o600) // drop the prune line
	os.WriteFile(path, append(bytes.Join(ls[:len(ls)-2], nil), ls[0]...), 0o600)
	var te *TamperError
	if _, err := st.VerifyLog(); !errors.As(err, &te) || te.File != StoreLog {
		t.Fatalf("VerifyLog after edit = %v", err)
	}
}
