package mask

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU is the CPU time of the calling thread (RUSAGE_THREAD), so the
// throughput below is per core even on a busy machine, where wall-clock
// benchmarks mostly measure the neighbours.
func threadCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		t.Skip("no RUSAGE_THREAD:", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestThroughputPerCore reports MB per CPU-second of Plan.Row on realistic
// rows. Run with GUARDRUN_MASK_THROUGHPUT=1 (it takes a few seconds); it
// fails below the target on rows without hits.
func TestThroughputPerCore(t *testing.T) {
	if os.Getenv("GUARDRUN_MASK_THROUGHPUT") == "" {
		t.Skip("set GUARDRUN_MASK_THROUGHPUT=1")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, tc := range []struct {
		name   string
		hits   bool
		all    bool
		target float64
	}{
		{"no hits", false, false, 300},
		{"with hits", true, false, 0},
		{"no hits, all detectors", false, true, 0},
	} {
		rows, cols := benchRows(4096, tc.hits)
		cfg := DefaultConfig()
		if tc.all {
			cfg.Detect["all"] = Inherit
		}
		m, err := New(cfg, []byte("k"))
		if err != nil {
			t.Fatal(err)
		}
		p := m.Plan(cols)
		total := 0
		for _, r := range rows {
			for _, v := range r {
				total += len(v)
			}
		}
		work := make([][]byte, len(cols))
		runtime.GC() // the setup's garbage is not this test's work
		for _, r := range rows {
			copy(work, r)
			p.Row(work)
		}
		// Best of several windows: sharing a core only ever slows a window
		// down, so the best one is closest to an idle core.
		mbs := 0.0
		for w := 0; w < 8; w++ {
			bytes := 0
			start := threadCPU(t)
			for threadCPU(t)-start < 250*time.Millisecond {
				for _, r := range rows {
					copy(work, r)
					p.Row(work)
				}
				bytes += total
			}
			mbs = max(mbs, float64(bytes)/1e6/(threadCPU(t)-start).Seconds())
		}
		t.Logf("%-24s %7.1f MB per CPU-second (best of 8 windows)", tc.name, mbs)
		if mbs < tc.target {
			t.Errorf("%s: %.1f MB/s per core, want >= %.0f", tc.name, mbs, tc.target)
		}
	}
}
