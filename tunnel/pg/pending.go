package pg

import "sync"

// entryKind is a client request that the server will answer.
type entryKind uint8

const (
	eQuery     entryKind = iota + 1 // simple Query: results, then ReadyForQuery
	eFunc                           // FunctionCall: FunctionCallResponse, then ReadyForQuery
	eParse                          // ParseComplete
	eBind                           // BindComplete
	eDescribeS                      // ParameterDescription, RowDescription | NoData
	eDescribeP                      // RowDescription | NoData
	eExecute                        // rows, CommandComplete | PortalSuspended | EmptyQueryResponse
	eClose                          // CloseComplete
	eSync                           // ReadyForQuery
)

// entry is one request in flight. The client-to-server loop pushes it when
// it forwards the request; the server-to-client loop pops it when the
// answer arrives, so the server side always knows which statement, portal
// and result formats a message belongs to.
type entry struct {
	kind     entryKind
	seq      uint64   // Query.Seq of the SQL behind it (Parse, Query)
	name     string   // statement (Parse, Describe S, Close S) or portal name
	stmt     string   // eBind: source statement
	close    byte     // eClose: 'S' or 'P'
	internal bool     // injected by the proxy: its answer is not forwarded
	refused  *Verdict // the request was replaced by one that must fail
}

// pendingQueue is a FIFO shared by the two loops of a connection.
type pendingQueue struct {
	mu    sync.Mutex
	items []entry
	head  int
}

func (q *pendingQueue) push(e entry) {
	q.mu.Lock()
	if q.head > 0 && q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
	} else if q.head > 64 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.items = append(q.items, e)
	q.mu.Unlock()
}

// peek returns a copy of the oldest entry, if any.
func (q *pendingQueue) peek() (entry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return entry{}, false
	}
	return q.items[q.head], true
}

// pop removes the oldest entry and returns a copy of it.
func (q *pendingQueue) pop() (entry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return entry{}, false
	}
	e := q.items[q.head]
	q.items[q.head] = entry{}
	q.head++
	return e, true
}
