//go:build !unix

package pgtest

import (
	"fmt"
	"os/exec"
	"time"
)

type osUser struct{}

func serverOwner() (*osUser, error) {
	return nil, fmt.Errorf("%w: pgtest supports unix systems only", ErrNoPostgres)
}

func (u *osUser) runAs(*exec.Cmd)        {}
func (u *osUser) chown(string) error     { return nil }
func (u *osUser) chownTree(string) error { return nil }
func (p *process) stop(time.Duration)    { _ = p.cmd.Process.Kill(); <-p.done }
func (p *process) kill()                 { _ = p.cmd.Process.Kill(); <-p.done }

// AsServerUser is unsupported outside unix.
func AsServerUser(*exec.Cmd) error { return ErrNoPostgres }

// ChownToServerUser is unsupported outside unix.
func ChownToServerUser(string) error { return ErrNoPostgres }
