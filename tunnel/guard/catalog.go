package guard

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Catalog tells the column names of a COPY ... TO STDOUT, which the
// protocol does not carry: without them, column rules (a password column)
// could not apply to COPY data. It asks the upstream on a connection of its
// own, by preparing (never executing) a statement with the same columns.
type Catalog struct {
	dsn string

	mu   sync.Mutex
	conn *pgconn.PgConn
}

// NewCatalog returns a Catalog for the upstream dsn; it connects on first use.
func NewCatalog(dsn string) *Catalog { return &Catalog{dsn: dsn} }

// Close closes its connection, if any.
func (c *Catalog) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c.conn.Close(ctx)
		cancel()
		c.conn = nil
	}
}

var (
	copyOutRE   = regexp.MustCompile(`(?is)^\s*copy\s+(.*?)\s+to\s+stdout\b`)
	copyColsRE  = regexp.MustCompile(`(?s)^(.*?)\s*\((.*)\)\s*$`)
	quotedIdent = regexp.MustCompile(`^"(.*)"$`)
)

// CopyColumns returns the column names of a COPY ... TO STDOUT statement:
// from its column list when it has one, else from the upstream's catalog.
func (c *Catalog) CopyColumns(ctx context.Context, stmt string) ([]string, error) {
	m := copyOutRE.FindStringSubmatch(stmt)
	if m == nil {
		return nil, nil
	}
	target := strings.TrimSpace(m[1])
	var probe string
	switch {
	case strings.HasPrefix(target, "("):
		probe = strings.TrimSuffix(strings.TrimPrefix(target, "("), ")")
	default:
		if cm := copyColsRE.FindStringSubmatch(target); cm != nil {
			var names []string
			for _, col := range strings.Split(cm[2], ",") {
				col = strings.TrimSpace(col)
				if q := quotedIdent.FindStringSubmatch(col); q != nil {
					col = strings.ReplaceAll(q[1], `""`, `"`)
				} else {
					col = strings.ToLower(col)
				}
				names = append(names, col)
			}
			return names, nil
		}
		probe = "select * from " + target
	}
	return c.describe(ctx, probe)
}

// describe prepares sql as the unnamed statement, which parses and plans it
// but runs nothing, and returns its result columns.
func (c *Catalog) describe(ctx context.Context, sql string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil || c.conn.IsClosed() {
			conn, err := pgconn.Connect(ctx, c.dsn)
			if err != nil {
				return nil, err
			}
			c.conn = conn
		}
		sd, err := c.conn.Prepare(ctx, "", sql, nil)
		if err != nil {
			if c.conn.IsClosed() {
				c.conn = nil
				continue
			}
			return nil, err
		}
		names := make([]string, len(sd.Fields))
		for i, f := range sd.Fields {
			names[i] = f.Name
		}
		return names, nil
	}
	return nil, context.DeadlineExceeded
}
