package guard

import (
	"strconv"
	"strings"
	"time"

	"github.com/guardrun/guardrun/recorder"
	"github.com/guardrun/guardrun/tunnel/pg"
)

// StartResult implements pg.Results: every result gets a filter, so that
// its row count, masked counts and duration reach the record.
func (c *connGuard) StartResult(r pg.ResultInfo) pg.RowFilter {
	// A result's duration runs from when its statement was sent, for the
	// first result of a Query or Parse; a prepared statement's later
	// executions are timed from their first answer.
	now := c.g.o.Now()
	c.mu.Lock()
	p := c.pending[r.Seq]
	first := p != nil && !p.timed
	if first {
		p.timed = true
	}
	c.mu.Unlock()
	f := &resultFilter{c: c, info: r, started: now}
	if p != nil {
		if first {
			f.started = p.started
		}
		if r.Index < len(p.sql) {
			f.sql = p.sql[r.Index]
		}
	}
	if c.g.o.Masker != nil && len(r.Fields) > 0 {
		if r.Copy && p != nil && r.Index < len(p.cols) && len(p.cols[r.Index]) == len(r.Fields) {
			named := make([]pg.Field, len(r.Fields))
			copy(named, r.Fields)
			for i := range named {
				named[i].Name = p.cols[r.Index][i]
			}
			r.Fields = named
		}
		f.masker = c.g.o.Masker.Plan(r.Fields)
		if pm, ok := f.masker.(*planMasker); ok && r.Copy && p != nil && r.Index < len(p.raw) {
			pm.setCopyFormat(copyFormatOf(p.raw[r.Index]))
		}
	}
	return f
}

// ServerError implements pg.Results: error and notice texts can quote row
// values (`Key (email)=(bob@example.com) already exists`).
func (c *connGuard) ServerError(e *pg.ServerMessage, notice bool) {
	if c.g.o.Masker == nil {
		return
	}
	e.Message = c.g.maskText(e.Message)
	e.Detail = c.g.maskText(e.Detail)
	e.Hint = c.g.maskText(e.Hint)
	e.Where = c.g.maskText(e.Where)
}

// Notification implements pg.Results.
func (c *connGuard) Notification(channel, payload string) string {
	return c.g.maskText(payload)
}

type resultFilter struct {
	c       *connGuard
	info    pg.ResultInfo
	masker  RowMasker
	sql     string
	started time.Time
	rows    int64
}

// Row implements pg.RowFilter.
func (f *resultFilter) Row(values [][]byte) {
	f.rows++
	if f.masker != nil {
		f.masker.Row(values)
	}
}

// CopyData implements pg.RowFilter.
func (f *resultFilter) CopyData(data []byte) []byte {
	f.rows++
	if f.masker != nil {
		return f.masker.CopyData(data)
	}
	return data
}

// End implements pg.RowFilter.
func (f *resultFilter) End(tag, sqlstate string) {
	g := f.c.g
	rows := f.rows
	if n, ok := tagRows(tag); ok {
		rows = n
	}
	var masked map[string]int
	total := 0
	if f.masker != nil {
		masked = f.masker.Counts()
		for _, n := range masked {
			total += n
		}
	}
	dur := g.o.Now().Sub(f.started)
	g.record(recorder.Result{
		Connection: g.o.Connection, ConnID: f.c.info.ID, Seq: f.info.Seq, Index: f.info.Index,
		Tag: tag, Rows: rows, SQLState: sqlstate, Duration: dur, Masked: masked,
	})
	g.activity(Activity{ConnID: f.c.info.ID, SQL: f.sql, Decision: "done", Rows: rows, Masked: total, Tag: tag, SQLState: sqlstate, Done: true})
}

// tagRows reads the row count of a command tag: "SELECT 10", "INSERT 0 3",
// "UPDATE 2", "COPY 5".
func tagRows(tag string) (int64, bool) {
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(tag[i+1:], 10, 64)
	return n, err == nil
}
