package recorder

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// randString mixes ASCII, control characters, quotes, non-ASCII, astral
// characters and invalid UTF-8.
func randString(r *rand.Rand) string {
	pieces := []string{"a", "Z", " ", "\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "\u2028", "😀", "\xff", "\xe2\x82", "<&>", "SELECT"}
	var b bytes.Buffer
	for range r.IntN(8) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func randStrings(r *rand.Rand) []string {
	if r.IntN(3) == 0 {
		return nil
	}
	out := make([]string, r.IntN(3))
	for i := range out {
		out[i] = randString(r)
	}
	return out
}

func randEvents(r *rand.Rand) []Event {
	return []Event{
		SessionStart{Start: Start{Identity: Identity{Email: randString(r), Groups: randStrings(r), Verified: r.IntN(2) == 0}, Command: randStrings(r), WorkDir: randString(r)}, Session: randString(r), Format: 1},
		TunnelOpen{Connection: randString(r), ConnType: "postgres", Listen: randString(r), Upstream: randString(r)},
		ConnOpen{Connection: randString(r), ConnID: r.Uint64() >> 1, Application: randString(r)},
		ConnClose{Connection: randString(r), ConnID: uint64(r.IntN(9)), Error: randString(r)},
		AuthFailure{Reason: randString(r)},
		Statement{SQL: randString(r), Reads: randStrings(r), Flags: randStrings(r), Decision: randString(r), Index: r.IntN(5) - 2},
		&Statement{SQL: randString(r)},
		ApprovalRequested{ID: randString(r), Deadline: time.Unix(r.Int64N(1<<33), r.Int64N(1e9)).In(time.FixedZone("x", 3600*r.IntN(5)))},
		ApprovalAnswered{Verdict: randString(r), Waited: time.Duration(r.Int64())},
		Result{Tag: randString(r), Rows: r.Int64() - r.Int64(), Masked: map[string]int{randString(r): r.IntN(100), randString(r): 1}},
		Result{Masked: map[string]int{}},
		Warning{Message: randString(r)},
		CastStart{Width: r.IntN(300)},
		Checkpoint{CastBytes: r.Int64(), CastSHA256: randString(r)},
		SessionEnd{ExitCode: r.IntN(256) - 128},
	}
}

// TestEncoderMatchesCanonical holds the fast encoder to the definition:
// the same bytes as Canonical(json.Marshal(v)), for every event type.
func TestEncoderMatchesCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s Session
	s.prev = GenesisPrev
	for range 300 {
		for _, ev := range randEvents(r) {
			when := time.Unix(r.Int64N(1<<33), r.Int64N(1e9))
			fast, fastSum, err := s.line(7, when, ev)
			if err != nil {
				t.Fatal(err)
			}
			slow, slowSum, err := chainLine(7, when, ev.EventType(), ev, s.prev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(fast, slow) || fastSum != slowSum {
				t.Fatalf("%s:\nfast %s\nslow %s", reflect.TypeOf(ev), fast, slow)
			}
			if pl, problem := parseChainLine(fast); problem != "" || pl.Hash != fastSum {
				t.Fatalf("%s: %s", fast, problem)
			}
		}
	}
}

func TestCanonicalMatchesPythonDefinition(t *testing.T) {
	got, err := CanonicalJSON([]byte(`{"b":[1,-0,"\u00e9\ud83d\ude00"],"a":{"z":null,"y":true},"c":"\u007f\u2028\b"}`))
	if err != nil {
		t.Fatal(err)
	}
	// python3 -c 'import json;print(json.dumps(json.loads(...),sort_keys=True,separators=(",",":")))'
	want := `{"a":{"y":true,"z":null},"b":[1,0,"\u00e9\ud83d\ude00"],"c":"` + "\x7f" + `\u2028\b"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, err := CanonicalJSON([]byte(`{"a":1.5}`)); err == nil {
		t.Fatal("fraction accepted")
	}
}
