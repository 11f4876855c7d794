package pg

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// FuzzValidators: what the allocation-free validators accept, pgproto3
// decodes, and it re-encodes byte for byte (nothing ambiguous is relayed).
func FuzzValidators(f *testing.F) {
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Bind{},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s", ParameterFormatCodes: []int16{1},
			Parameters: [][]byte{[]byte("x"), nil, {}}, ResultFormatCodes: []int16{0, 1}},
		&pgproto3.Query{String: "select 1"},
	} {
		b, _ := m.Encode(nil)
		f.Add(b[0], b[5:])
	}
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		switch typ % 2 {
		case 0:
			if validBind(body) != nil {
				return
			}
			var m pgproto3.Bind
			if err := m.Decode(body); err != nil {
				t.Fatalf("validBind accepted what pgproto3 rejects: %v", err)
			}
			enc, err := m.Encode(nil)
			if err != nil || !bytes.Equal(enc[5:], body) {
				t.Fatalf("re-encoded Bind differs: %x vs %x (%v)", enc[5:], body, err)
			}
		case 1:
			if validQuery(body) != nil {
				return
			}
			var m pgproto3.Query
			if err := m.Decode(body); err != nil {
				t.Fatal(err)
			}
			enc, _ := m.Encode(nil)
			if !bytes.Equal(enc[5:], body) {
				t.Fatal("re-encoded Query differs")
			}
		}
	})
}

// FuzzDataRow: walkDataRow accepts exactly what re-encodes byte for byte.
func FuzzDataRow(f *testing.F) {
	f.Add(appendDataRow(nil, [][]byte{[]byte("a"), nil, {}})[5:])
	f.Add([]byte{0, 1, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, body []byte) {
		var vals [][]byte
		if walkDataRow(body, func(_ int, v []byte) { vals = append(vals, v) }) != nil {
			return
		}
		if got := appendDataRow(nil, vals)[5:]; !bytes.Equal(got, body) {
			t.Fatalf("re-encoded row differs: %x vs %x", got, body)
		}
	})
}

func TestMsgReader(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100<<10)
	var stream []byte
	stream = append(stream, appendCopyData(nil, []byte("small"))...)
	stream = append(stream, appendCopyData(nil, big)...)
	stream = append(stream, 'Q', 0, 0, 0) // truncated header
	flushes := 0
	r := msgReader{r: bufio.NewReaderSize(bytes.NewReader(stream), 4096), max: 1 << 20, from: "client",
		flush: func() error { flushes++; return nil }}
	m, err := r.next()
	if err != nil || string(m[5:]) != "small" {
		t.Fatalf("%q %v", m, err)
	}
	m, err = r.next()
	if err != nil || !bytes.Equal(m[5:], big) {
		t.Fatalf("big message: %v", err)
	}
	if _, err := r.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
	if flushes == 0 {
		t.Fatal("never flushed before blocking")
	}
	r = msgReader{r: bufio.NewReader(bytes.NewReader(appendCopyData(nil, big))), max: 1000, from: "client"}
	var pe *ProtocolError
	if _, err := r.next(); !errors.As(err, &pe) || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
}
