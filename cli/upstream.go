package cli

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/guardrun/guardrun/tunnel/pg"
)

// upstreamProblem turns a failed upstream connection into one line that
// says what went wrong and a hint that says what to check. The driver's own
// error can be long (one line per address and TLS attempt); the server's
// message or the network error is what a person needs.
func upstreamProblem(c upstreamConn, err error) *HintError {
	cause := upstreamCause(err)
	where := fmt.Sprintf("%s's upstream %s", c.Name, c.Display())
	src := c.Source
	if src == "" {
		src = "the upstream URL"
	}
	switch {
	case errors.Is(err, pg.ErrUpstreamAuth):
		return &HintError{Err: fmt.Errorf("%s rejected the credential: %s", where, cause),
			Hint: fmt.Sprintf("check the user and password of connection %s (%s)", c.Name, src)}
	case errors.Is(err, pg.ErrUpstreamTLS):
		return &HintError{Err: fmt.Errorf("TLS to %s failed: %s", where, cause),
			Hint: "check sslmode and sslrootcert in the upstream URL (verify-full needs the server's CA and a matching host name)"}
	case errors.Is(err, pg.ErrUpstreamRejected):
		return &HintError{Err: fmt.Errorf("%s refused the connection: %s", where, cause),
			Hint: fmt.Sprintf("check the database and user names of connection %s (%s)", c.Name, src)}
	default:
		return &HintError{Err: fmt.Errorf("cannot reach %s: %s", where, cause),
			Hint: fmt.Sprintf("is the database up? guardrun connect %s --check tests the upstream without a client", c.Name)}
	}
}

func upstreamCause(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Sprintf("%s (%s)", pgErr.Message, pgErr.Code)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return redactDSN(op.Err.Error())
	}
	msg := redactDSN(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimSuffix(strings.TrimSpace(msg), ":")
}
