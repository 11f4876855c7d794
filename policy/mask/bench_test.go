package mask

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchRows builds realistic text rows: names, addresses, prose, codes,
// timestamps, JSON documents. withHits plants an email, a phone, a card or a
// token in about every second row.
func benchRows(n int, withHits bool) ([][][]byte, []Column) {
	r := rand.New(rand.NewPCG(1, 2))
	first := []string{"Alice", "Bob", "Chloé", "Dmitri", "Eve", "Farah", "Gustavo", "Hiroshi", "Ines", "Jamal"}
	last := []string{"Martin", "Okafor", "Nguyen", "Schmidt", "García", "Kowalski", "O'Brien", "Tanaka", "Rossi", "Smith-Jones"}
	streets := []string{"Main St", "Rue de la Paix", "Hauptstraße", "Baker Street", "Avenida Paulista", "Elm Avenue"}
	cities := []string{"Springfield", "Lyon", "München", "London", "São Paulo", "Toronto", "Austin, TX"}
	words := strings.Fields("the order was shipped late because the warehouse ran out of stock and the customer asked for a refund on the second item which arrived damaged; support escalated the ticket to tier two after three attempts")
	status := []string{"pending", "shipped", "delivered", "refunded", "cancelled"}
	cols := []Column{
		{Name: "name", TypeOID: 25}, {Name: "address", TypeOID: 1043}, {Name: "city", TypeOID: 1043},
		{Name: "notes", TypeOID: 25}, {Name: "ref", TypeOID: 1043}, {Name: "status", TypeOID: 1043},
		{Name: "updated", TypeOID: 25}, {Name: "meta", TypeOID: 3802},
	}
	hits := []string{"reach me at jane.doe@example.org", "call +44 20 7946 0958", "card 4111-1111-1111-1111", "ghp_" + strings.Repeat("aB3", 12), "555-867-5309"}
	rows := make([][][]byte, n)
	for i := range rows {
		var notes strings.Builder
		for k := 0; k < 8+r.IntN(12); k++ {
			notes.WriteString(words[r.IntN(len(words))])
			notes.WriteByte(' ')
		}
		fmt.Fprintf(&notes, "total $%d.%02d, %d items", r.IntN(900), r.IntN(100), 1+r.IntN(9))
		if withHits && i%2 == 0 {
			notes.WriteString(" " + hits[r.IntN(len(hits))])
		}
		rows[i] = [][]byte{
			[]byte(first[r.IntN(len(first))] + " " + last[r.IntN(len(last))]),
			[]byte(fmt.Sprintf("%d %s, Apt %d", 1+r.IntN(999), streets[r.IntN(len(streets))], r.IntN(40))),
			[]byte(cities[r.IntN(len(cities))]),
			[]byte(notes.String()),
			[]byte(fmt.Sprintf("ORD-2024-%06d", r.IntN(1000000))),
			[]byte(status[r.IntN(len(status))]),
			[]byte(fmt.Sprintf("2024-%02d-%02d %02d:%02d:%02d.%06d+00", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000000))),
			[]byte(fmt.Sprintf(`{"plan": "pro", "seats": %d, "trial": false, "tags": ["b2b", "eu"], "version": "1.%d.%d"}`, 1+r.IntN(50), r.IntN(20), r.IntN(10))),
		}
	}
	return rows, cols
}

func benchPlan(b *testing.B, withHits bool, cfg Config) {
	rows, cols := benchRows(4096, withHits)
	m, err := New(cfg, []byte("bench key"))
	if err != nil {
		b.Fatal(err)
	}
	p := m.Plan(cols)
	total := 0
	for _, r := range rows {
		for _, v := range r {
			total += len(v)
		}
	}
	work := make([][]byte, len(cols))
	b.SetBytes(int64(total))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range rows {
			copy(work, r)
			p.Row(work)
		}
	}
}

func BenchmarkRowNoHits(b *testing.B)   { benchPlan(b, false, DefaultConfig()) }
func BenchmarkRowWithHits(b *testing.B) { benchPlan(b, true, DefaultConfig()) }
func BenchmarkRowNoHitsAllDetectors(b *testing.B) {
	c := DefaultConfig()
	c.Detect["all"] = Inherit
	benchPlan(b, false, c)
}

func BenchmarkCopyDataNoHits(b *testing.B) {
	rows, cols := benchRows(1024, false)
	var data []byte
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				data = append(data, '\t')
			}
			data = textEscape(data, v, '\t')
		}
		data = append(data, '\n')
	}
	m, _ := New(DefaultConfig(), []byte("k"))
	p := m.Plan(cols)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.CopyData(data, CopyFormat{})
	}
}

func BenchmarkTextStatement(b *testing.B) {
	m, _ := New(DefaultConfig(), []byte("k"))
	q := "SELECT u.id, u.email, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.email = 'bob@example.com' AND o.created_at > now() - interval '30 days' ORDER BY o.total DESC LIMIT 50"
	b.SetBytes(int64(len(q)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Text(q)
	}
}
