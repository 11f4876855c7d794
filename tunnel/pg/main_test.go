package pg

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests (internal and external) when any
// goroutine outlives them: every connection handler, relay loop and cancel
// must have been waited for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
