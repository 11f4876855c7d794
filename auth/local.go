package auth

import (
	"context"
	"os/exec"
	"os/user"
	"strings"
	"time"
)

// LocalIdentity is what the machine says about who runs guardrun: the OS
// user and, when git knows it, user.email. Nothing here is verified.
func LocalIdentity(ctx context.Context) Identity {
	id := Identity{Method: "local"}
	if u, err := user.Current(); err == nil {
		id.Subject = u.Username
		id.Name = u.Name
		if id.Name == "" {
			id.Name = u.Username
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "config", "--get", "user.email").Output(); err == nil {
		id.Email = strings.TrimSpace(string(out))
	}
	return id
}
