//go:build unix

// Command bench measures what guardrun's PostgreSQL tunnel costs, against
// one throwaway server, in one invocation:
//
//	tunnel/pg/bench/run.sh                        # medians of 3 rounds (~12 minutes)
//	go run ./tunnel/pg/bench                      # one round (~4 minutes)
//	go run ./tunnel/pg/bench -duration 3s -rows 200000   # a quick look
//
// Part 1 runs `pgbench -S` (select-only) in each query mode (-modes, default
// prepared,simple) with each client count (-clients, default 1,4) for
// -duration each, four ways: directly, through a plain TCP relay (a few lines
// of Go that only copy bytes: the floor any proxy pays), through pgbouncer in
// session mode when it is installed, and through guardrun's proxy. It prints
// TPS and average latency for each, and the ratios guardrun/relay and
// guardrun/pgbouncer. pgbench, the server, and the proxies share the
// machine's CPUs, so compare proxies with proxies; direct is context.
//
// Part 2 streams a -rows row SELECT of mixed text columns to a real client
// (pgx, in this process, raw values, text format) directly, through the
// relay, and through guardrun, and reports rows/s, MB/s and their ratios,
// and the Go heap (in use before, peak while streaming, after) and the peak
// RSS of this process during each stream: guardrun's memory must stay flat
// whatever the result size. The client's own share is the direct run's.
//
// Because TPS on a shared machine moves with whatever else runs, each row
// also shows the proxy's CPU time per transaction (getrusage for the
// in-process relay and guardrun, /proc for pgbouncer): the proxy's own cost.
// -runs N repeats every cell N times, interleaving the ways, and reports
// medians.
//
// -ways picks which ways run: direct, relay, pgbouncer, and the guardrun
// modes of guardModes — guardrun (no hooks) and guardrun-hooks (hooks that
// look at every statement and row and change nothing: the seam's own cost).
// relay-epoll (opt-in, Linux) is the relay as a single-threaded epoll loop,
// like pgbouncer's. -cpuprofile PREFIX writes a CPU profile of each relay and guardrun run
// (PREFIX-<way>-<run>.pprof) for `go tool pprof`.
// It needs the PostgreSQL binaries (see package pgtest; GUARDRUN_PG_BIN) and
// optionally pgbouncer on PATH (apt-get install pgbouncer).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/guardrun/guardrun/tunnel"
	"github.com/guardrun/guardrun/tunnel/pg"
	"github.com/guardrun/guardrun/tunnel/pg/pgtest"
)

// guardMode is one way of running guardrun's proxy: its name in -ways and
// the hooks it installs (nil Hooks = pass-through).
type guardMode struct {
	Name  string
	Hooks func() pg.Hooks
}

// guardModes lists the guardrun configurations the benchmark knows. Add a
// mode here (e.g. "guard" with policy and masking hooks) and name it in
// -ways; every table then gets a row for it and ratios against relay and
// pgbouncer.
func guardModes() []guardMode {
	return append([]guardMode{
		{Name: "guardrun", Hooks: nil},
		// Hooks installed that judge nothing and change nothing: what the
		// seam itself costs (decoding every SQL-carrying message and every
		// result message, a filter call per row) before any real guard.
		{Name: "guardrun-hooks", Hooks: func() pg.Hooks { return noopHooks{} }},
	}, guardedModes()...)
}

// noopHooks forwards every statement and returns a row filter that looks at
// every row and changes nothing.
type noopHooks struct{}

func (noopHooks) Open(context.Context, pg.ConnInfo) pg.ConnHooks { return noopHooks{} }
func (noopHooks) Inspect(context.Context, pg.Query) pg.Verdict   { return pg.Verdict{Action: pg.Forward} }
func (noopHooks) StartResult(pg.ResultInfo) pg.RowFilter         { return noopHooks{} }
func (noopHooks) ServerError(*pg.ServerMessage, bool)            {}
func (noopHooks) Notification(_, payload string) string          { return payload }
func (noopHooks) Close(error)                                    {}
func (noopHooks) Row([][]byte)                                   {}
func (noopHooks) CopyData(data []byte) []byte                    { return data }
func (noopHooks) End(string, string)                             {}

const (
	benchUser = "bench"
	benchPass = "bench-Password-1"
	benchDB   = "bench"
)

type flags struct {
	duration   time.Duration
	clients    []int
	modes      []string
	ways       []string
	rows       int
	scale      int
	md5        bool
	cpuprofile string
	skipPgb    bool
	skipStream bool
	runs       int
}

func main() {
	os.Exit(run())
}

func run() int {
	var f flags
	var clients, modes, ways string
	flag.DurationVar(&f.duration, "duration", 10*time.Second, "length of each pgbench run")
	flag.StringVar(&clients, "clients", "1,4", "pgbench client counts, comma-separated")
	flag.StringVar(&modes, "modes", "prepared,simple", "pgbench query modes (-M), comma-separated")
	flag.StringVar(&ways, "ways", "", "ways to reach the server (default direct,relay,pgbouncer and every guardrun mode)")
	flag.IntVar(&f.rows, "rows", 1_000_000, "rows in the streaming test (0 skips it)")
	flag.IntVar(&f.scale, "scale", 10, "pgbench -i scale")
	flag.BoolVar(&f.md5, "md5", false, "md5 password authentication on the server instead of SCRAM")
	flag.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of each relay and guardrun run to PREFIX-<way>-<run>.pprof")
	flag.BoolVar(&f.skipPgb, "no-pgbench", false, "skip the pgbench part")
	flag.IntVar(&f.runs, "runs", 1, "pgbench runs per cell; the median is reported")
	flag.Parse()
	var err error
	if f.clients, err = parseInts(clients); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -clients:", err)
		return 2
	}
	f.modes = splitList(modes)
	f.ways = splitList(ways)
	if len(f.ways) == 0 {
		f.ways = []string{"direct", "relay", "pgbouncer"}
		for _, m := range guardModes() {
			f.ways = append(f.ways, m.Name)
		}
	}
	f.skipStream = f.rows <= 0
	f.runs = max(1, f.runs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := bench(ctx, &f, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if errors.Is(err, pgtest.ErrNoPostgres) {
			fmt.Fprintln(os.Stderr, "bench: hint: install PostgreSQL (apt-get install postgresql-15) or set GUARDRUN_PG_BIN")
		}
		return 1
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad client count %q", p)
		}
		out = append(out, n)
	}
	return out, nil
}

// endpoint is a running way to reach the server.
type endpoint struct {
	name           string
	host           string
	port           int
	user, password string
	inproc         bool // runs in this process: profiled with -cpuprofile
	// cpu reports the CPU time the proxy has used so far (nil for direct).
	// On a shared machine TPS depends on who else runs; CPU per transaction
	// is the proxy's own cost and holds still.
	cpu   func() time.Duration
	close func() error
}

func bench(ctx context.Context, f *flags, out io.Writer) error {
	var opts []pgtest.Option
	if f.md5 {
		opts = append(opts, pgtest.WithMD5())
	}
	opts = append(opts, pgtest.WithConf("shared_buffers = 256MB"), pgtest.WithConf("max_connections = 200"))
	srv, err := pgtest.StartCluster(opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.CreateUserContext(ctx, benchUser, benchPass); err != nil {
		return err
	}
	if err := srv.CreateDBContext(ctx, benchDB, benchUser); err != nil {
		return err
	}
	fmt.Fprintf(out, "guardrun tunnel benchmark: PostgreSQL in %s, %d CPUs, GOMAXPROCS=%d, %s\n",
		srv.BinDir, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())

	var eps []*endpoint
	defer func() {
		for _, ep := range eps {
			if err := ep.close(); err != nil {
				fmt.Fprintf(os.Stderr, "bench: closing %s: %v\n", ep.name, err)
			}
		}
	}()
	for _, w := range f.ways {
		ep, err := startWay(ctx, w, srv)
		if errors.Is(err, errSkip) {
			fmt.Fprintf(out, "note: %v\n", err)
			continue
		}
		if err != nil {
			return err
		}
		eps = append(eps, ep)
	}

	if !f.skipPgb {
		if err := runPgbench(ctx, f, srv, eps, out); err != nil {
			return err
		}
	}
	if !f.skipStream {
		var streamEps []*endpoint
		for _, ep := range eps {
			if ep.name != "pgbouncer" {
				streamEps = append(streamEps, ep)
			}
		}
		if err := runStream(ctx, f, srv, streamEps, out); err != nil {
			return err
		}
	}
	return nil
}

var errSkip = errors.New("skipped")

func startWay(ctx context.Context, name string, srv *pgtest.Server) (*endpoint, error) {
	switch name {
	case "direct":
		return &endpoint{name: name, host: srv.Host, port: srv.Port, user: benchUser, password: benchPass, close: func() error { return nil }}, nil
	case "relay":
		return startRelay(name, srv.Addr())
	case "relay-epoll":
		return startEpollRelay(name, srv.Addr())
	case "pgbouncer":
		return startPgbouncer(ctx, srv)
	}
	for _, m := range guardModes() {
		if m.Name == name {
			return startGuardrun(m, srv)
		}
	}
	return nil, fmt.Errorf("unknown way %q", name)
}

// startRelay is the floor: accept, dial, copy bytes both ways.
func startRelay(name, upstream string) (*endpoint, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = struct{}{}
		} else {
			delete(conns, c)
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				track(c, true)
				track(u, true)
				defer track(c, false)
				defer track(u, false)
				var inner sync.WaitGroup
				inner.Go(func() { pump(u, c); u.(*net.TCPConn).CloseWrite() })
				pump(c, u)
				c.(*net.TCPConn).CloseWrite()
				inner.Wait()
			})
		}
	})
	return &endpoint{
		name: name, host: "127.0.0.1", port: ln.Addr().(*net.TCPAddr).Port,
		user: benchUser, password: benchPass, cpu: selfCPU, inproc: true,
		close: func() error {
			ln.Close()
			mu.Lock()
			for c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
			return nil
		},
	}, nil
}

// pump copies src to dst with a plain read/write loop. Not io.Copy: between
// two TCP connections that uses splice(2), which costs two system calls and
// a pipe per chunk and, for the small messages of a database protocol, is
// several times slower than read/write — not the floor we want to measure.
func pump(dst, src net.Conn) {
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

func startGuardrun(m guardMode, srv *pgtest.Server) (*endpoint, error) {
	cred := tunnel.NewCredential()
	cfg := pg.Config{
		Upstream: srv.DSN(benchUser, benchPass, benchDB),
		User:     cred.User,
		Password: cred.Password,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if m.Hooks != nil {
		cfg.Hooks = m.Hooks()
	}
	p, err := pg.NewProxy(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := tunnel.Listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	return &endpoint{
		name: m.Name, host: "127.0.0.1", port: ln.Addr().(*net.TCPAddr).Port,
		user: cred.User, password: cred.Password, inproc: true, cpu: selfCPU,
		close: func() error {
			cancel()
			return <-done
		},
	}, nil
}

// startPgbouncer runs pgbouncer in session mode in front of the server, with
// the bench user's password in its auth file (it speaks SCRAM or md5 to both
// sides, like the server does).
func startPgbouncer(ctx context.Context, srv *pgtest.Server) (*endpoint, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		return nil, fmt.Errorf("%w: pgbouncer is not installed (apt-get install pgbouncer)", errSkip)
	}
	dir, err := os.MkdirTemp("", "bench-pgbouncer-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	auth := "scram-sha-256"
	if srv.MD5 {
		auth = "md5"
	}
	ini := fmt.Sprintf(`[databases]
%[1]s = host=%[2]s port=%[3]d dbname=%[1]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[4]d
unix_socket_dir =
auth_type = %[5]s
auth_file = %[6]s
pool_mode = session
max_client_conn = 200
default_pool_size = 50
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
syslog = 0
log_connections = 0
log_disconnections = 0
`, benchDB, srv.Host, srv.Port, port, auth, filepath.Join(dir, "userlist.txt"))
	files := map[string]string{
		"pgbouncer.ini": ini,
		"userlist.txt":  fmt.Sprintf("%q %q\n", benchUser, benchPass),
	}
	if err := pgtest.ChownToServerUser(dir); err != nil {
		return nil, err
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return nil, err
		}
		if err := pgtest.ChownToServerUser(p); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(filepath.Join(dir, "pgbouncer.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := pgtest.AsServerUser(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	closeFn := func() error {
		select {
		case <-done:
		default:
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		return os.RemoveAll(dir)
	}
	// Ready when a client can log in and run a statement.
	dsn := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", benchUser, benchPass, port, benchDB)
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := pgconn.Connect(cctx, dsn)
		if err == nil {
			_, err = c.Exec(cctx, "select 1").ReadAll()
			c.Close(cctx)
		}
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			closeFn()
			return nil, fmt.Errorf("pgbouncer not ready: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	return &endpoint{name: "pgbouncer", host: "127.0.0.1", port: port, user: benchUser, password: benchPass, close: closeFn,
		cpu: func() time.Duration { return procCPU(pid) }}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (ep *endpoint) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env,
		"PGHOST="+ep.host, "PGPORT="+strconv.Itoa(ep.port),
		"PGUSER="+ep.user, "PGPASSWORD="+ep.password,
		"PGDATABASE="+benchDB, "PGSSLMODE=disable")
}

func (ep *endpoint) dsn() string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", ep.user, ep.password, ep.host, ep.port, benchDB)
}

// profile starts a CPU profile for a guardrun run when -cpuprofile is set.
func profile(f *flags, ep *endpoint, label string) (stop func()) {
	if f.cpuprofile == "" || !ep.inproc {
		return func() {}
	}
	path := fmt.Sprintf("%s-%s-%s.pprof", f.cpuprofile, ep.name, label)
	file, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cpuprofile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		fmt.Fprintln(os.Stderr, "bench: cpuprofile:", err)
		file.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		file.Close()
	}
}

var (
	tpsRe = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	latRe = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	errRe = regexp.MustCompile(`number of failed transactions: (\d+)`)
	txRe  = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
)

type pgbResult struct {
	mode    string
	clients int
	way     string
	tps     float64
	latMs   float64
	cpuUs   float64 // proxy CPU µs per transaction; 0 = not measured
}

func runPgbench(ctx context.Context, f *flags, srv *pgtest.Server, eps []*endpoint, out io.Writer) error {
	pgbench := srv.Bin("pgbench")
	direct := &endpoint{name: "direct", host: srv.Host, port: srv.Port, user: benchUser, password: benchPass}
	fmt.Fprintf(out, "\npgbench -i -s %d ...", f.scale)
	start := time.Now()
	if o, err := command(ctx, direct.env(), pgbench, "-i", "-s", strconv.Itoa(f.scale), "-q"); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, o)
	}
	fmt.Fprintf(out, " %v\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(out, "pgbench -S (select-only), -T %v per run, scale %d\n\n", f.duration, f.scale)

	// Every cell runs -runs times and reports its median, and the ways are
	// interleaved within each (mode, clients) cell so drift in the machine's
	// load hits them all alike.
	samples := map[string][]pgbResult{}
	var order []string
	for round := 0; round < f.runs; round++ {
		for _, mode := range f.modes {
			for _, c := range f.clients {
				for _, ep := range eps {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					var cpu0 time.Duration
					if ep.cpu != nil {
						cpu0 = ep.cpu()
					}
					stop := profile(f, ep, fmt.Sprintf("pgbench-%s-c%d", mode, c))
					o, err := command(ctx, ep.env(), pgbench, "-S", "-n", "-M", mode,
						"-c", strconv.Itoa(c), "-j", strconv.Itoa(c), "-T", strconv.Itoa(max(1, int(f.duration.Seconds()))))
					stop()
					if err != nil {
						return fmt.Errorf("pgbench -M %s -c %d via %s: %w\n%s", mode, c, ep.name, err, o)
					}
					r := pgbResult{mode: mode, clients: c, way: ep.name}
					if m := errRe.FindStringSubmatch(o); m != nil && m[1] != "0" {
						return fmt.Errorf("pgbench via %s: %s failed transactions\n%s", ep.name, m[1], o)
					}
					m1, m2 := tpsRe.FindStringSubmatch(o), latRe.FindStringSubmatch(o)
					if m1 == nil || m2 == nil {
						return fmt.Errorf("pgbench via %s: cannot read tps/latency from:\n%s", ep.name, o)
					}
					r.tps, _ = strconv.ParseFloat(m1[1], 64)
					r.latMs, _ = strconv.ParseFloat(m2[1], 64)
					if m := txRe.FindStringSubmatch(o); m != nil && ep.cpu != nil {
						if n, _ := strconv.Atoi(m[1]); n > 0 {
							r.cpuUs = float64((ep.cpu() - cpu0).Microseconds()) / float64(n)
						}
					}
					key := fmt.Sprintf("%s/%d/%s", mode, c, ep.name)
					if samples[key] == nil {
						order = append(order, key)
					}
					samples[key] = append(samples[key], r)
					fmt.Fprintf(os.Stderr, "  run %d: %-8s c=%d %-10s %9.0f tps  %.3f ms  %.1f CPU µs/tx\n", round+1, mode, c, ep.name, r.tps, r.latMs, r.cpuUs)
				}
			}
		}
	}
	var results []pgbResult
	for _, key := range order {
		results = append(results, median(samples[key]))
	}
	if f.runs > 1 {
		fmt.Fprintf(out, "median of %d runs each\n", f.runs)
	}

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclients\tway\tTPS\tlatency ms\tvs direct\tproxy CPU µs/tx\t")
	find := func(mode string, c int, way string) *pgbResult {
		for i := range results {
			if results[i].mode == mode && results[i].clients == c && results[i].way == way {
				return &results[i]
			}
		}
		return nil
	}
	for _, r := range results {
		vs := ""
		if d := find(r.mode, r.clients, "direct"); d != nil && d.tps > 0 {
			vs = fmt.Sprintf("%.2f", r.tps/d.tps)
		}
		cpu := "-"
		if r.cpuUs > 0 {
			cpu = fmt.Sprintf("%.1f", r.cpuUs)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.3f\t%s\t%s\t\n", r.mode, r.clients, r.way, r.tps, r.latMs, vs, cpu)
	}
	tw.Flush()

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclients\tway\tTPS /relay\tTPS /pgbouncer\tCPU/tx /relay\tCPU/tx /pgbouncer\t")
	for _, m := range guardModes() {
		for _, mode := range f.modes {
			for _, c := range f.clients {
				g := find(mode, c, m.Name)
				if g == nil {
					continue
				}
				ratio := func(way string) string {
					if b := find(mode, c, way); b != nil && b.tps > 0 {
						return fmt.Sprintf("%.3f", g.tps/b.tps)
					}
					return "-"
				}
				cpuRatio := func(way string) string {
					if b := find(mode, c, way); b != nil && b.cpuUs > 0 && g.cpuUs > 0 {
						return fmt.Sprintf("%.2f", g.cpuUs/b.cpuUs)
					}
					return "-"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", mode, c, m.Name, ratio("relay"), ratio("pgbouncer"),
					cpuRatio("relay"), cpuRatio("pgbouncer"))
			}
		}
	}
	tw.Flush()
	return nil
}

// median returns the run with the median TPS (the lower middle one for an
// even count).
func median(rs []pgbResult) pgbResult {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b pgbResult) int { return cmp.Compare(a.tps, b.tps) })
	return rs[(len(rs)-1)/2]
}

func command(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	o, err := cmd.CombinedOutput()
	return string(o), err
}

// Streaming.

const streamTable = "stream_rows"

type streamResult struct {
	way                             string
	rows                            int64
	bytes                           int64
	elapsed                         time.Duration
	heapBefore, heapPeak, heapAfter uint64
	rssPeak                         uint64
	cpu                             time.Duration // this process (client + in-process proxy)
	alloc                           uint64        // bytes allocated by this process while streaming
}

func runStream(ctx context.Context, f *flags, srv *pgtest.Server, eps []*endpoint, out io.Writer) error {
	fmt.Fprintf(out, "\nstreaming: creating %d rows ...", f.rows)
	start := time.Now()
	create := fmt.Sprintf(`drop table if exists %[1]s;
create table %[1]s as
  select g as id, md5(g::text) as token, 'user' || g || '@example.com' as email,
         'customer ' || (g %% 977) || ' of region ' || (g %% 13) as note,
         (g * 7) %% 100000 as amount, '2024-01-01'::date + (g %% 365) as day
  from generate_series(1, %[2]d) g;
alter table %[1]s owner to %[3]s;`, streamTable, f.rows, benchUser)
	if err := srv.ExecIn(ctx, benchDB, create); err != nil {
		return err
	}
	if err := srv.ExecIn(ctx, benchDB, "vacuum analyze "+streamTable); err != nil {
		return err
	}
	fmt.Fprintf(out, " %v\n", time.Since(start).Round(100*time.Millisecond))
	query := "select id, token, email, note, amount, day from " + streamTable

	var results []streamResult
	// One untimed pass warms the server's cache for everyone.
	if _, err := streamOnce(ctx, eps[0], query); err != nil {
		return err
	}
	// Like pgbench: -runs rounds, ways interleaved, the median time reported,
	// but the highest memory of any round.
	runs := make([][]streamResult, len(eps))
	for round := 0; round < f.runs; round++ {
		for i, ep := range eps {
			stop := profile(f, ep, "stream")
			r, err := streamOnce(ctx, ep, query)
			stop()
			if err != nil {
				return fmt.Errorf("stream via %s: %w", ep.name, err)
			}
			if r.rows != int64(f.rows) {
				return fmt.Errorf("stream via %s: %d rows, want %d", ep.name, r.rows, f.rows)
			}
			fmt.Fprintf(os.Stderr, "  run %d: stream %-10s %.2fs\n", round+1, ep.name, r.elapsed.Seconds())
			runs[i] = append(runs[i], r)
		}
	}
	for _, rs := range runs {
		m := slices.Clone(rs)
		slices.SortFunc(m, func(a, b streamResult) int { return cmp.Compare(a.elapsed, b.elapsed) })
		r := m[(len(m)-1)/2]
		for _, x := range rs {
			r.heapBefore, r.heapPeak = max(r.heapBefore, x.heapBefore), max(r.heapPeak, x.heapPeak)
			r.heapAfter, r.rssPeak = max(r.heapAfter, x.heapAfter), max(r.rssPeak, x.rssPeak)
		}
		results = append(results, r)
	}

	fmt.Fprintf(out, "%d-row SELECT (6 columns, text format), read by pgx in this process\n\n", f.rows)
	relay := slices.IndexFunc(results, func(r streamResult) bool { return r.way == "relay" })
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "way\tseconds\trows/s\tMB/s\t/relay\tCPU s\talloc MB\theap before MiB\theap peak MiB\theap after MiB\tpeak RSS MiB\t")
	for _, r := range results {
		rate := float64(r.rows) / r.elapsed.Seconds()
		mbs := float64(r.bytes) / 1e6 / r.elapsed.Seconds()
		vs := "-"
		if relay >= 0 {
			vs = fmt.Sprintf("%.3f", rate/(float64(results[relay].rows)/results[relay].elapsed.Seconds()))
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.0f\t%.1f\t%s\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.way, r.elapsed.Seconds(), rate, mbs, vs, r.cpu.Seconds(), float64(r.alloc)/1e6,
			mib(r.heapBefore), mib(r.heapPeak), mib(r.heapAfter), mib(r.rssPeak))
	}
	tw.Flush()
	fmt.Fprintf(out, "(%.0f MB of values per pass; CPU, allocation and memory are this process's: the client's own share is the direct row's)\n", float64(results[0].bytes)/1e6)
	return nil
}

// selfCPU is this process's user+system CPU time: the in-process proxies
// (relay, guardrun) are the only thing running in it during a pgbench run.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is another process's user+system CPU time (Linux /proc; clock
// ticks of 10ms, fine over runs of seconds).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime, stime are fields 14, 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// streamOnce reads the whole result with pgconn's result reader (raw
// values, no decoding: the client is as cheap as a client gets) while
// sampling the heap.
func streamOnce(ctx context.Context, ep *endpoint, query string) (streamResult, error) {
	r := streamResult{way: ep.name}
	c, err := pgconn.Connect(ctx, ep.dsn())
	if err != nil {
		return r, err
	}
	defer c.Close(context.Background())
	runtime.GC()
	r.heapBefore = heapInUse()
	resetPeakRSS()

	sampleDone := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleDone:
				return
			case <-t.C:
				peak = max(peak, heapInUse())
			}
		}
	})
	start, cpu0, alloc0 := time.Now(), selfCPU(), allocated()
	rr := c.ExecParams(ctx, query, nil, nil, nil, nil)
	for rr.NextRow() {
		r.rows++
		for _, v := range rr.Values() {
			r.bytes += int64(len(v))
		}
	}
	_, err = rr.Close()
	r.elapsed, r.cpu, r.alloc = time.Since(start), selfCPU()-cpu0, allocated()-alloc0
	close(sampleDone)
	wg.Wait()
	r.heapPeak = max(peak, r.heapBefore)
	runtime.GC()
	r.heapAfter = heapInUse()
	r.rssPeak = peakRSS()
	return r, err
}

func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// resetPeakRSS resets VmHWM (Linux: writing 5 to clear_refs), so peakRSS
// reports the peak of the run that follows.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func peakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
