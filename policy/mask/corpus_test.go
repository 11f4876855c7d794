package mask

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"
)

// Thresholds for the labelled corpus in testdata/corpus.tsv (real-looking
// positives and tricky negatives: ids, UUIDs, timestamps, versions, Luhn
// failures, hex digests, base64 blobs, prose that mentions passwords...).
const (
	minPrecision = 0.95
	minRecall    = 0.95
)

func TestCorpusPrecisionRecall(t *testing.T) {
	for _, name := range []string{"corpus.tsv", "holdout.tsv"} {
		t.Run(name, func(t *testing.T) { corpusScore(t, "testdata/"+name) })
	}
}

func corpusScore(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := allOn(t)
	type score struct{ tp, fp, fn int }
	scores := map[string]*score{}
	get := func(d string) *score {
		if scores[d] == nil {
			scores[d] = &score{}
		}
		return scores[d]
	}
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		label, value, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad corpus line %q", line)
		}
		lines++
		found := map[string]bool{}
		for _, h := range hits(t, m, value) {
			d, _, _ := strings.Cut(h, "=")
			found[d] = true
		}
		if label != "none" {
			if found[label] {
				get(label).tp++
			} else {
				get(label).fn++
				t.Logf("missed %s: %q", label, value)
			}
		}
		for d := range found {
			if d != label {
				get(d).fp++
				t.Logf("false %s: %q", d, value)
			}
		}
	}
	if lines < 300 {
		t.Fatalf("corpus has %d values, want a few hundred", lines)
	}
	names := make([]string, 0, len(scores))
	for d := range scores {
		names = append(names, d)
	}
	sort.Strings(names)
	var all score
	for _, d := range names {
		s := scores[d]
		all.tp += s.tp
		all.fp += s.fp
		all.fn += s.fn
		p, r := ratio(s.tp, s.tp+s.fp), ratio(s.tp, s.tp+s.fn)
		t.Logf("%-20s tp %3d  fp %2d  fn %2d  precision %.3f  recall %.3f", d, s.tp, s.fp, s.fn, p, r)
		if p < minPrecision || r < minRecall {
			t.Errorf("%s: precision %.3f recall %.3f, want >= %.2f / %.2f", d, p, r, minPrecision, minRecall)
		}
	}
	t.Logf("%-20s tp %3d  fp %2d  fn %2d  precision %.3f  recall %.3f (%d values)", "all", all.tp, all.fp, all.fn,
		ratio(all.tp, all.tp+all.fp), ratio(all.tp, all.tp+all.fn), lines)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}
