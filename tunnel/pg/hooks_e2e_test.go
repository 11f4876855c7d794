package pg_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/guardrun/guardrun/tunnel/pg"
)

// testHooks installs the test's inspector and result hooks on every
// connection and records what the proxy told them.
type testHooks struct {
	inspect   func(ctx context.Context, q pg.Query) pg.Verdict
	start     func(r pg.ResultInfo) pg.RowFilter
	serverErr func(e *pg.ServerMessage, notice bool)
	notify    func(channel, payload string) string

	mu      sync.Mutex
	queries []pg.Query
	results []pg.ResultInfo
	ends    []string // "tag/sqlstate" per End
	closed  []error
}

func (h *testHooks) Open(ctx context.Context, c pg.ConnInfo) pg.ConnHooks {
	return &testConnHooks{h: h}
}

type testConnHooks struct{ h *testHooks }

func (c *testConnHooks) Inspect(ctx context.Context, q pg.Query) pg.Verdict {
	c.h.mu.Lock()
	c.h.queries = append(c.h.queries, q)
	c.h.mu.Unlock()
	if c.h.inspect != nil {
		return c.h.inspect(ctx, q)
	}
	return pg.Verdict{Action: pg.Forward}
}

func (c *testConnHooks) StartResult(r pg.ResultInfo) pg.RowFilter {
	r.Fields = slices.Clone(r.Fields)
	c.h.mu.Lock()
	c.h.results = append(c.h.results, r)
	c.h.mu.Unlock()
	var f pg.RowFilter
	if c.h.start != nil {
		f = c.h.start(r)
	}
	if f == nil {
		return nil
	}
	return &endRecorder{RowFilter: f, h: c.h}
}

func (c *testConnHooks) ServerError(e *pg.ServerMessage, notice bool) {
	if c.h.serverErr != nil {
		c.h.serverErr(e, notice)
	}
}

func (c *testConnHooks) Notification(channel, payload string) string {
	if c.h.notify != nil {
		return c.h.notify(channel, payload)
	}
	return payload
}

func (c *testConnHooks) Close(err error) {
	c.h.mu.Lock()
	c.h.closed = append(c.h.closed, err)
	c.h.mu.Unlock()
}

type endRecorder struct {
	pg.RowFilter
	h *testHooks
}

func (e *endRecorder) End(tag, sqlstate string) {
	e.h.mu.Lock()
	e.h.ends = append(e.h.ends, tag+"/"+sqlstate)
	e.h.mu.Unlock()
	e.RowFilter.End(tag, sqlstate)
}

func (h *testHooks) snapshot() ([]pg.Query, []pg.ResultInfo, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.queries), slices.Clone(h.results), slices.Clone(h.ends)
}

func (h *testHooks) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queries, h.results, h.ends = nil, nil, nil
}

// replaceFilter rewrites every value containing from (text-like columns,
// either format: text and binary encodings of text are the same bytes) and
// turns binary values of columns named "nulled" into NULL.
type replaceFilter struct {
	r        pg.ResultInfo
	from, to []byte
	rows     int
}

func (f *replaceFilter) Row(values [][]byte) {
	f.rows++
	for i, v := range values {
		if i < len(f.r.Fields) && f.r.Fields[i].Name == "nulled" {
			values[i] = nil
			continue
		}
		if v != nil && bytes.Contains(v, f.from) {
			values[i] = bytes.ReplaceAll(v, f.from, f.to)
		}
	}
}

func (f *replaceFilter) CopyData(data []byte) []byte {
	return bytes.ReplaceAll(data, f.from, f.to)
}

func (f *replaceFilter) End(tag, sqlstate string) {}

// passFilter returns a filter that changes nothing but makes the proxy
// decode and re-encode every row.
type passFilter struct{}

func (passFilter) Row([][]byte)             {}
func (passFilter) CopyData(d []byte) []byte { return d }
func (passFilter) End(tag, sqlstate string) {}
func refuseIf(sub string) func(context.Context, pg.Query) pg.Verdict {
	return func(_ context.Context, q pg.Query) pg.Verdict {
		if q.Kind == pg.FunctionCallMessage {
			return pg.Verdict{Action: pg.Refuse, Code: "42501", Message: "guardrun: denied by policy rule test: function call"}
		}
		if strings.Contains(q.SQL, sub) {
			return pg.Verdict{Action: pg.Refuse, Code: "42501", Message: "guardrun: denied by policy rule test: " + sub, Hint: "ask a human"}
		}
		return pg.Verdict{Action: pg.Forward}
	}
}
