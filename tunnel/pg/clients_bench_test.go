package pg_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Go benchmarks of one round trip and of a streamed result, directly, through
// a byte-copying relay, and through the tunnel, so `go test -bench` shows the
// proxy's own cost per statement and per row next to the floor. The
// four-way pgbench comparison lives in ./bench.

type benchWay struct {
	name string
	dsn  string
}

func benchWays(b *testing.B) []benchWay {
	b.Helper()
	e := newClientEnv(b)
	direct := e.srv.DSN(clientUpUser, clientUpPass, clientDB)
	relayAddr := benchRelay(b, e.srv.Addr())
	relay := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", clientUpUser, clientUpPass, relayAddr, clientDB)
	guard := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", e.cred.User, e.cred.Password, e.port, e.db)
	return []benchWay{{"direct", direct}, {"relay", relay}, {"guardrun", guard}}
}

// benchRelay copies bytes between a loopback listener and upstream until the
// benchmark ends.
func benchRelay(b *testing.B, upstream string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, u)
			mu.Unlock()
			wg.Go(func() { benchPump(u, c); u.Close() })
			wg.Go(func() { benchPump(c, u); c.Close() })
		}
	})
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// benchPump copies with read/write, not io.Copy, whose splice(2) path is
// slower for small messages than the floor we want to show.
func benchPump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkProxySelect: one small extended-protocol query per iteration.
func BenchmarkProxySelect(b *testing.B) {
	for _, w := range benchWays(b) {
		b.Run(w.name, func(b *testing.B) {
			ctx := context.Background()
			c, err := pgconn.Connect(ctx, w.dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			args := [][]byte{[]byte("42")}
			for b.Loop() {
				rr := c.ExecParams(ctx, "select $1::int + 1, 'some text'", args, nil, nil, nil)
				n := 0
				for rr.NextRow() {
					n++
				}
				if _, err := rr.Close(); err != nil || n != 1 {
					b.Fatalf("rows %d, err %v", n, err)
				}
			}
		})
	}
}

// BenchmarkProxyStream: a 10,000-row text result per iteration; reports
// rows/s and bytes/s of values.
func BenchmarkProxyStream(b *testing.B) {
	const rows = 10000
	ways := benchWays(b)
	q := fmt.Sprintf("select g, md5(g::text), 'user' || g || '@example.com' from generate_series(1, %d) g", rows)
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			ctx := context.Background()
			c, err := pgconn.Connect(ctx, w.dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			var total int64
			for b.Loop() {
				rr := c.ExecParams(ctx, q, nil, nil, nil, nil)
				n := 0
				for rr.NextRow() {
					n++
					for _, v := range rr.Values() {
						total += int64(len(v))
					}
				}
				if _, err := rr.Close(); err != nil || n != rows {
					b.Fatalf("rows %d, err %v", n, err)
				}
			}
			b.SetBytes(total / int64(b.N))
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
