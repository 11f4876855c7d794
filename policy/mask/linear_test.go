package mask

import (
	"strings"
	"testing"
	"time"
)

// Values made of many near-triggers must not make the scan quadratic: each
// trigger's forward reads are bounded. A quadratic scan takes minutes on
// these 400 KB inputs; a linear one a second or two even on a busy machine.
func TestAdversarialInputsStayFast(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow; timing is meaningless under -race")
	}
	m := allOn(t)
	p := m.Plan([]Column{{Name: "t", TypeOID: 25}})
	for _, unit := range []string{
		"sk-", "postgres://", "$2b$", "a@", "1-", "password=", "-----BEGIN PRIVATE KEY-----", "eyJhbGciOiJIUzI1NiJ9.",
		"ghp_", "xoxb-", "glpat-", "AKIA", "$a ", "'", "/*", "x IN (", "INSERT INTO t (a) VALUES (1), ", "::", "DE89",
	} {
		s := strings.Repeat(unit, 400000/len(unit))
		start := time.Now()
		m.Text(s)
		p.Row([][]byte{[]byte(s)})
		m.Plan(nil).CopyData([]byte(s+"\n"), CopyFormat{})
		d := time.Since(start)
		if d > 30*time.Second {
			t.Errorf("%q x %d: %v", unit, len(s)/len(unit), d)
		}
	}
}
