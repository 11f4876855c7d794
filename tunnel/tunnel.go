// Package tunnel holds what every protocol tunnel shares: loopback-only
// listeners, the per-session credential, and the Approver that held
// statements wait on. Protocol proxies live in subpackages (tunnel/pg).
//
// Rules kept here: a tunnel never binds a non-loopback address; it never
// imports tui or cli (a human reaches it only through Approver); whoever
// starts a goroutine waits for it.
package tunnel

import (
	"context"

	"github.com/guardrun/guardrun/policy"
)

// Approver asks a human about one held statement. Approve blocks until an
// answer, the request's deadline, or ctx is done; on timeout or ctx it
// returns a deny answer (never an approval). Only the asking connection
// waits: implementations must be safe for concurrent use.
type Approver interface {
	Approve(ctx context.Context, req policy.ApprovalRequest) (policy.Answer, error)
}
