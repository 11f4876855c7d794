package guard

import (
	"strings"

	"github.com/guardrun/guardrun/policy/mask"
	"github.com/guardrun/guardrun/tunnel/pg"
)

// PolicyMasker adapts a *mask.Masker (already narrowed to one connection
// with ForConnection) to the guard. Columns reach it by name and type only:
// the protocol gives a table's OID, not its name, so qualified column rules
// match on their last part (masking more is the safe side).
func PolicyMasker(m *mask.Masker) Masker {
	if m == nil || !m.Enabled() {
		return nil
	}
	return policyMasker{m}
}

type policyMasker struct{ m *mask.Masker }

func (p policyMasker) Text(s string) (string, map[string]int) {
	out, c := p.m.Text(s)
	return out, c
}

func (p policyMasker) Plan(fields []pg.Field) RowMasker {
	cols := make([]mask.Column, len(fields))
	for i, f := range fields {
		cols[i] = mask.Column{Name: f.Name, TypeOID: f.TypeOID, Binary: f.Format == 1}
	}
	return &planMasker{plan: p.m.Plan(cols)}
}

type planMasker struct {
	plan *mask.Plan
	copy mask.CopyFormat
}

func (p *planMasker) Row(values [][]byte)             { p.plan.Row(values) }
func (p *planMasker) CopyData(data []byte) []byte     { return p.plan.CopyData(data, p.copy) }
func (p *planMasker) Counts() map[string]int          { return p.plan.Counts() }
func (p *planMasker) setCopyFormat(f mask.CopyFormat) { p.copy = f }

// copyFormatOf reads a COPY statement's text or CSV options: the protocol
// says only "text", and CSV quoting changes where fields end.
func copyFormatOf(stmt string) mask.CopyFormat {
	f, _, _ := mask.ParseCopyFormat(stmt)
	return f
}

// binaryCopyOut reports whether stmt is a COPY ... TO STDOUT in the binary
// format, whose data the masker cannot read.
func binaryCopyOut(stmt string) bool {
	_, binary, ok := mask.ParseCopyFormat(stmt)
	return ok && binary && strings.Contains(strings.ToLower(stmt), "stdout")
}
