//go:build unix

package pgtest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// osUser is the OS account the server runs as; nil means this process's own.
type osUser struct {
	uid, gid uint32
	home     string
}

// serverOwner returns the postgres OS user when running as root (PostgreSQL
// refuses to run as root), nil otherwise.
func serverOwner() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoPostgresUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: bad uid/gid %s/%s", ErrNoPostgresUser, u.Uid, u.Gid)
	}
	return &osUser{uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}, nil
}

func (u *osUser) runAs(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group: a signal aimed at the test (Ctrl-C) does not hit
	// the server before its cleanup runs.
	cmd.SysProcAttr.Setpgid = true
	setDeathSignal(cmd.SysProcAttr)
	if u == nil {
		return
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env, "HOME="+u.home, "USER=postgres", "LOGNAME=postgres")
}

func (u *osUser) chown(path string) error {
	if u == nil {
		return nil
	}
	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

func (u *osUser) chownTree(root string) error {
	if u == nil {
		return nil
	}
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return u.chown(p)
	})
}

// stop asks for a fast shutdown (SIGINT) and kills everything if it takes
// longer than grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		p.cleanupIPC()
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
	p.cleanupIPC()
}

// kill SIGKILLs the postmaster and its children. Backends put themselves in
// their own process groups, so they are found by parent pid.
func (p *process) kill() {
	if !p.exited() {
		pid := p.cmd.Process.Pid
		kids := children(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		<-p.done
	}
	p.cleanupIPC()
}

// cleanupIPC removes the System V shared memory segment a killed postmaster
// leaves behind (a clean shutdown removes it itself; then this is a no-op).
func (p *process) cleanupIPC() {
	dir := p.cmd.Args[2] // postgres -D DIR
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	id, err := strconv.Atoi(f[1])
	if err != nil {
		return
	}
	_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
}

// children lists the pids whose parent is ppid (Linux /proc; elsewhere none,
// and backends notice their postmaster's death on their own).
func children(ppid int) []int {
	if runtime.GOOS != "linux" {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil && pp == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// AsServerUser makes cmd run as the OS user the clusters run as: the postgres
// user when this process is root (helpers such as pgbouncer refuse root too),
// else this process's own user. Files cmd must read can be handed to that
// user with ChownToServerUser.
func AsServerUser(cmd *exec.Cmd) error {
	u, err := serverOwner()
	if err != nil {
		return err
	}
	u.runAs(cmd)
	return nil
}

// ChownToServerUser gives path to the OS user the clusters run as (a no-op
// unless this process is root).
func ChownToServerUser(path string) error {
	u, err := serverOwner()
	if err != nil {
		return err
	}
	return u.chown(path)
}
