package recorder

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as a recording guardrun that gets
// killed: with GUARDRUN_RECORDER_HELPER=DIR it records into DIR forever.
func TestMain(m *testing.M) {
	if dir := os.Getenv("GUARDRUN_RECORDER_HELPER"); dir != "" {
		helperRecord(dir)
		return
	}
	os.Exit(m.Run())
}

func helperRecord(dir string) {
	st, err := OpenStore(dir, StoreOptions{Signer: KeySigner(testKey())})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	s, err := st.Create(testStart())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	cw := s.Cast(80, 24)
	fmt.Println("session", s.ID())
	for i := 1; ; i++ {
		cw.WriteOutput([]byte(fmt.Sprintf("output %d \xe2\x94", i)))
		cw.WriteOutput([]byte("\x80\r\n"))
		if err := s.Record(Statement{Connection: "app", ConnID: 1, Seq: uint64(i), SQL: "SELECT 1", Decision: "allow"}); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		if i == 200 {
			s.Sync()
			fmt.Println("durable", i)
		}
	}
}

func TestKilledSessionVerifiesAsEndedAbnormally(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GUARDRUN_RECORDER_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var id string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if f[0] == "session" {
			id = f[1]
		}
		if f[0] == "durable" {
			break
		}
		if f[0] == "error" {
			t.Fatal(sc.Text())
		}
	}
	time.Sleep(120 * time.Millisecond) // several more groups, mid-stream
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if id == "" {
		t.Fatal("helper printed no session")
	}
	st, err := OpenStore(dir, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := verifyOK(t, st, id)
	if rep.State != StateAbnormal {
		t.Fatalf("state %s, want ended abnormally", rep.State)
	}
	if rep.Statements < 200 || rep.Checkpoints == 0 || rep.CastBound == 0 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("after SIGKILL: %d lines verify, %d statements, cast %d bytes (%d bound), torn tail %v",
		rep.Lines, rep.Statements, rep.CastBytes, rep.CastBound, rep.TornTail)
	list, err := st.List()
	if err != nil || len(list) != 1 || list[0].State != StateAbnormal {
		t.Fatalf("list %+v %v", list, err)
	}
}
