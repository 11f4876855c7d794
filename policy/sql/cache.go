package sql

import (
	"hash/maphash"
	"sync"
)

// Classifier classifies SQL text and remembers the result by statement
// shape, so that a statement repeated with other literals costs a scan and a
// lookup instead of a parse. It never changes a verdict: the cache key keeps
// everything but the values of literals, and a classification that depends
// on a literal's value is cached under a key that keeps the literals (see
// lex.go). Texts the parser rejects are not cached. Safe for concurrent use.
//
// The slices in the returned statements are shared with the cache: treat
// them as read-only.
type Classifier struct {
	seed   maphash.Seed
	shards []shard
	pool   sync.Pool // *[]token
}

// Bounds on what the cache holds: a text longer than maxCachedText is
// parsed every time (a bulk INSERT's shape rarely repeats), and all keys
// together stay under maxCacheBytes whatever the statements look like.
const (
	maxCachedText = 64 << 10
	maxCacheBytes = 32 << 20
	entryOverhead = 256 // a rough size of an entry besides its key
)

// NewClassifier returns a Classifier that keeps up to size texts' shapes
// (least recently used out first), within 32 MiB. size <= 0 means 4096.
func NewClassifier(size int) *Classifier {
	if size <= 0 {
		size = 4096
	}
	n := 16
	if size < 64 {
		n = 1
	}
	c := &Classifier{seed: maphash.MakeSeed(), shards: make([]shard, n)}
	per := (size + n - 1) / n
	for i := range c.shards {
		c.shards[i] = shard{max: per, maxBytes: maxCacheBytes / n, m: make(map[string]*entry, per)}
	}
	c.pool.New = func() any { s := make([]token, 0, 64); return &s }
	return c
}

// sensitiveMarker is stored under a placeholder key whose classification
// depends on literal values: look again under the literal key.
var sensitiveMarker = &result{}

// Classify classifies every statement of text, like the package-level
// Classify, using the cache.
func (c *Classifier) Classify(text string) []Statement {
	bp := c.pool.Get().(*[]token)
	defer c.pool.Put(bp)
	toks, ok := scan(text, (*bp)[:0])
	*bp = toks[:0]
	if !ok || len(text) > maxCachedText {
		stmts, _ := classifyText(text, toks, ok)
		return stmts
	}
	var kb [256]byte
	key := appendKey(kb[:0], text, toks, false)
	res := c.get(key)
	if res == sensitiveMarker {
		key = appendKey(kb[:0], text, toks, true)
		res = c.get(key)
	}
	if res != nil {
		out := make([]Statement, len(res.stmts))
		for i := range res.stmts {
			out[i] = instantiate(res.stmts[i], text, toks, res.spans[i])
		}
		return out
	}
	stmts, fresh := classifyText(text, toks, true)
	if fresh.cacheable {
		if fresh.sensitive {
			c.put(string(appendKey(kb[:0], text, toks, false)), sensitiveMarker)
			c.put(string(appendKey(kb[:0], text, toks, true)), fresh)
		} else {
			c.put(string(key), fresh)
		}
	}
	return stmts
}

// Len reports how many shapes the cache holds.
func (c *Classifier) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (c *Classifier) shard(key []byte) *shard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

func (c *Classifier) get(key []byte) *result {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[string(key)] // no allocation: the compiler reads the map with the bytes
	if e == nil {
		return nil
	}
	s.moveToFront(e)
	return e.res
}

func (c *Classifier) put(key string, res *result) {
	s := c.shard([]byte(key))
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[key]; e != nil {
		e.res = res
		s.moveToFront(e)
		return
	}
	e := &entry{key: key, res: res}
	s.m[key] = e
	s.bytes += len(key) + entryOverhead
	s.pushFront(e)
	for len(s.m) > s.max || s.bytes > s.maxBytes && len(s.m) > 1 {
		old := s.tail
		s.unlink(old)
		delete(s.m, old.key)
		s.bytes -= len(old.key) + entryOverhead
	}
}

// shard is one lock's worth of an LRU: a map and a doubly linked list,
// most recently used at head.
type shard struct {
	mu         sync.Mutex
	max        int // entries
	maxBytes   int
	bytes      int
	m          map[string]*entry
	head, tail *entry
}

type entry struct {
	key        string
	res        *result
	prev, next *entry
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) moveToFront(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}
