package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// templates caches, per binary directory, the path of an initdb'd data
// directory. It is package-level state on purpose: each entry is written
// once and never changes (the directory it names is immutable), and sharing
// it is what makes a second Start in the same process cost a copy instead of
// an initdb.
var templates = struct {
	sync.Mutex
	dirs map[string]string
}{dirs: map[string]string{}}

// template returns an initdb'd data directory for bin, creating it once per
// PostgreSQL installation in the user's cache directory. Concurrent test
// processes race benignly: each builds its own and the first rename wins.
func template(bin string, owner *osUser) (string, error) {
	templates.Lock()
	defer templates.Unlock()
	if d, ok := templates.dirs[bin]; ok {
		return d, nil
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	key, err := templateKey(bin)
	if err != nil {
		return "", err
	}
	final := filepath.Join(root, key)
	if _, err := os.Stat(filepath.Join(final, "ok")); err == nil {
		templates.dirs[bin] = filepath.Join(final, "data")
		return templates.dirs[bin], nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("pgtest: template cache: %w", err)
	}
	// initdb runs as the server's owner, which may not reach the cache (it
	// lives in root's home): initdb in a temp dir, then copy into the cache.
	work, err := os.MkdirTemp("", "pgtest-initdb-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer os.RemoveAll(work)
	if err := owner.chown(work); err != nil {
		return "", err
	}
	pwfile := filepath.Join(work, "pw")
	if err := os.WriteFile(pwfile, []byte(SuperuserPassword+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := owner.chown(pwfile); err != nil {
		return "", err
	}
	data := filepath.Join(work, "data")
	cmd := exec.Command(filepath.Join(bin, "initdb"),
		"-D", data, "-U", Superuser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	owner.runAs(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	stage, err := os.MkdirTemp(root, key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := copyTree(data, filepath.Join(stage, "data")); err != nil {
		os.RemoveAll(stage)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(stage, "ok"), nil, 0o600); err != nil {
		os.RemoveAll(stage)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Rename(stage, final); err != nil {
		// Another process won the race; use its template.
		os.RemoveAll(stage)
		if _, serr := os.Stat(filepath.Join(final, "ok")); serr != nil {
			return "", fmt.Errorf("pgtest: template cache: %w", err)
		}
	}
	templates.dirs[bin] = filepath.Join(final, "data")
	return templates.dirs[bin], nil
}

func cacheRoot() (string, error) {
	if d := os.Getenv("GUARDRUN_PG_CACHE"); d != "" {
		return d, nil
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "guardrun", "pgtest"), nil
	}
	return filepath.Join(os.TempDir(), "guardrun-pgtest-"+strconv.Itoa(os.Getuid())), nil
}

// templateKey names a template after the installation that made it, so an
// upgrade of the binaries gets a fresh one.
func templateKey(bin string) (string, error) {
	fi, err := os.Stat(filepath.Join(bin, "initdb"))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoPostgres, err)
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("v1|%s|%d|%d", bin, fi.Size(), fi.ModTime().UnixNano())))
	return hex.EncodeToString(h[:8]), nil
}

// prepare copies the template and writes this cluster's configuration.
func (s *Server) prepare(tmpl string, owner *osUser, o *options) error {
	if err := copyTree(tmpl, s.DataDir); err != nil {
		return err
	}
	if err := os.Mkdir(s.SocketDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	method := "scram-sha-256"
	enc := "scram-sha-256"
	if o.md5 {
		method, enc = "md5", "md5"
	}
	hostType := "host"
	if o.tls {
		hostType = "hostssl"
	}
	hba := fmt.Sprintf("local all all trust\n%[1]s all all 127.0.0.1/32 %[2]s\n%[1]s all all ::1/128 %[2]s\n", hostType, method)
	if err := os.WriteFile(filepath.Join(s.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	conf := []string{
		"",
		"# pgtest",
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + s.SocketDir + "'",
		"password_encryption = '" + enc + "'",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"max_connections = 100",
		"log_min_messages = warning",
		"log_line_prefix = '%m [%p] '",
	}
	if o.tls {
		if err := s.writeTLS(); err != nil {
			return err
		}
		conf = append(conf, "ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'")
	}
	conf = append(conf, o.conf...)
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = io.WriteString(f, strings.Join(conf, "\n")+"\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// Everything under the cluster directory belongs to the server's owner,
	// except that the CA file stays readable for clients.
	return owner.chownTree(s.Dir)
}

// start picks a free port and starts the postmaster, waiting until it
// accepts connections.
func (s *Server) start(owner *osUser) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	cmd := exec.Command(filepath.Join(s.BinDir, "postgres"), "-D", s.DataDir, "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	owner.runAs(cmd)
	p, err := startProcess(cmd)
	logf.Close() // the child holds its own copy
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.proc = p
	// Ready when the postmaster says so in its pid file (PostgreSQL 10+),
	// confirmed by one connection; polling with connections alone fills the
	// log with "the database system is starting up".
	deadline := time.Now().Add(60 * time.Second)
	pid := strconv.Itoa(p.cmd.Process.Pid)
	for {
		var cerr error = errors.New("postmaster.pid does not say ready")
		if b, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid")); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) > 7 && lines[0] == pid && strings.TrimSpace(lines[7]) == "ready" {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				conn, err := s.superConn(ctx, "postgres")
				cancel()
				if err == nil {
					conn.Close(context.Background())
					return nil
				}
				cerr = err
			}
		}
		select {
		case <-p.done:
			s.proc = nil
			return fmt.Errorf("pgtest: postgres exited during startup: %v\n%s", p.err, s.LogTail(20))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(5 * time.Second)
			s.proc = nil
			return fmt.Errorf("pgtest: postgres not ready after 60s: %v\n%s", cerr, s.LogTail(20))
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// copyTree copies a directory of regular files, keeping permission bits.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		default:
			return fmt.Errorf("pgtest: copy template: unexpected file %s", p)
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// process is a running postmaster. The goroutine that waits for it is
// started by startProcess and finished when done closes; stop and kill wait
// for it.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
