package recorder

import (
	"testing"
	"time"
)

// BenchmarkRecord measures append throughput: Record of a typical
// statement + result pair, with the writer making them durable in groups.
// The events/s metric includes the final Sync.
func BenchmarkRecord(b *testing.B) {
	st := testStore(b, StoreOptions{})
	s, err := st.Create(testStart())
	if err != nil {
		b.Fatal(err)
	}
	stmt := Statement{Connection: "app", ConnID: 1, SQL: "SELECT id, email FROM users WHERE id = $1", Kind: "select",
		Reads: []string{"public.users"}, Decision: "allow", Rule: "default", Protocol: "extended"}
	res := Result{Connection: "app", ConnID: 1, Tag: "SELECT 1", Rows: 1, Duration: 300 * time.Microsecond, Masked: map[string]int{"email": 1}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		stmt.Seq = uint64(i)
		res.Seq = uint64(i)
		if err := s.Record(stmt); err != nil {
			b.Fatal(err)
		}
		if err := s.Record(res); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "events/s")
	b.StopTimer()
	s.Close(0)
}

// BenchmarkCastOutput measures the PTY host's cost per output chunk.
func BenchmarkCastOutput(b *testing.B) {
	st := testStore(b, StoreOptions{})
	s, _ := st.Create(testStart())
	cw := s.Cast(120, 40)
	chunk := []byte("\x1b[32mok\x1b[0m  src/handlers/users.go  12 +++---  rewrote the query builder\r\n")
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		cw.WriteOutput(chunk)
	}
	s.Sync()
	b.StopTimer()
	s.Close(0)
}

// BenchmarkRecordCall is the cost a tunnel goroutine pays per event: Record
// stamps and queues; encoding, hashing and fsync happen on the writer.
func BenchmarkRecordCall(b *testing.B) {
	st := testStore(b, StoreOptions{MaxBacklog: 1 << 30})
	s, err := st.Create(testStart())
	if err != nil {
		b.Fatal(err)
	}
	stmt := Statement{Connection: "app", ConnID: 1, SQL: "SELECT id, email FROM users WHERE id = $1", Kind: "select",
		Reads: []string{"public.users"}, Decision: "allow", Rule: "default", Protocol: "extended"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		stmt.Seq = uint64(i)
		if err := s.Record(stmt); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Close(0)
}
