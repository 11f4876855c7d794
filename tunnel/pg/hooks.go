package pg

import "context"

// This file is the seam between the protocol proxy and the guard that judges
// and masks. The proxy owns the wire; the guard owns the decisions. Everything
// a hook receives is valid only for the duration of the call unless it says
// otherwise: hooks must copy what they keep.

// ConnInfo describes one client connection to the tunnel.
type ConnInfo struct {
	ID          uint64 // unique within the tunnel
	Remote      string // client address (always loopback)
	User        string // user name in the client's startup message
	Database    string // database in the client's startup message
	Application string // application_name in the client's startup message
}

// Hooks creates the per-connection hooks. Called once per authenticated
// client connection, before the first query. A nil return means pass-through:
// no Inspect, no result tracking, every message relayed as it is (still
// checked to parse).
type Hooks interface {
	Open(ctx context.Context, c ConnInfo) ConnHooks
}

// ConnHooks are one connection's inspector and result hook. Methods are
// called from that connection's goroutines only: Inspect from the
// client-to-server goroutine, the result methods from the server-to-client
// goroutine; the two may run concurrently with each other.
type ConnHooks interface {
	Inspector
	Results
	// Close is called once when the connection ends, with the error that
	// ended it (nil on a clean Terminate).
	Close(err error)
}

// QueryKind says which protocol message carried the SQL.
type QueryKind int

const (
	SimpleQuery         QueryKind = iota // Query message: possibly several statements
	ParseMessage                         // Parse message: one statement, maybe named
	FunctionCallMessage                  // FunctionCall message: SQL is empty, Function holds the OID
)

// TxStatus is the last transaction status the server reported in
// ReadyForQuery: 'I' idle, 'T' in a transaction block, 'E' failed block.
type TxStatus byte

// Query is a statement the client wants the server to run.
type Query struct {
	Seq      uint64 // per connection, increasing; results name it
	Kind     QueryKind
	SQL      string
	Name     string // prepared statement name for Parse ("" = unnamed)
	Function uint32 // FunctionCall OID
	TxStatus TxStatus
}

// Action is what the proxy does with a Query.
type Action int

const (
	Forward Action = iota // send it on unchanged
	Refuse                // do not send it; answer the client with Error
	Rewrite               // send SQL instead of the client's text
)

// Verdict is the inspector's answer for one Query.
type Verdict struct {
	Action Action
	SQL    string // for Rewrite
	// For Refuse: the error the client receives (SQLSTATE 42501 for a policy
	// deny). The proxy keeps client and server agreeing on transaction state:
	// a refusal inside a transaction block aborts it upstream too.
	Code    string
	Message string
	Detail  string
	Hint    string
}

// Inspector judges each Query before anything of it is forwarded. It may
// block (waiting for a human); only this connection waits, and what the
// server already owes the client keeps flowing. ctx is cancelled when the
// connection or the tunnel closes, and when the client sends a
// CancelRequest for this connection; after a client's cancel the statement
// is refused with 57014 whatever Inspect returns. Inspect must return soon
// after ctx is done: Serve waits for every connection.
//
// How a refusal travels: the proxy sends the server a stand-in that fails
// at the same point (a Parse or Query of text that is not SQL, or a Bind,
// Describe or Execute of a name that does not exist), so the server itself
// aborts the transaction block and skips to Sync; the stand-in's error is
// replaced by the verdict's. After a refused extended-protocol message the
// proxy discards the client's messages until Sync, as PostgreSQL does; a
// statement name that was refused stays refused (Bind, Describe) until it
// is closed or parsed again. Refusals are not reported to Results (neither
// StartResult nor ServerError): the guard that refused knows.
type Inspector interface {
	Inspect(ctx context.Context, q Query) Verdict
}

// Field describes one result column as the client will decode it. For the
// extended protocol the proxy resolves the format from Bind's result format
// codes and the RowDescription from Describe (statement or portal), so every
// DataRow is delivered with the fields that really describe it.
type Field struct {
	Name     string
	TableOID uint32
	Column   uint16 // attribute number in TableOID, 0 if not a table column
	TypeOID  uint32
	Format   int16 // 0 text, 1 binary
}

// Results sees everything the server sends back that could carry data.
//
// Extended protocol details: a result belongs to the Execute of a portal;
// ResultInfo.Seq is the Seq of the Parse that created the portal's
// statement (0 when the statement was created by SQL PREPARE, which the
// proxy only saw as a Query). When the client executes a portal whose row
// description it never asked for, the proxy asks the server itself and
// hides the answer, so Fields are always known. A portal executed in steps
// (Execute with a row limit, PortalSuspended) is one result: StartResult
// once, End once at its CommandComplete, or End("", "") when the portal is
// closed or its transaction ends first. COPY BOTH (replication) data is
// relayed untouched.
type Results interface {
	// StartResult is called once for every command result the server sends:
	// before its first RowDescription/DataRow/CopyOutResponse, or at its
	// CommandComplete, EmptyQueryResponse or ErrorResponse when it returns no
	// rows. It returns the filter for the rows, or nil to pass them through
	// untouched (End is then not called).
	StartResult(r ResultInfo) RowFilter
	// ServerError sees each ErrorResponse and NoticeResponse (notice=true)
	// and may rewrite its text fields in place.
	ServerError(e *ServerMessage, notice bool)
	// Notification sees each NOTIFY payload and returns what the client gets.
	Notification(channel, payload string) string
}

// ResultInfo says where a result comes from and what its rows look like.
type ResultInfo struct {
	Seq    uint64  // Query.Seq of the Query or Parse whose SQL produced it
	Index  int     // statement index within a multi-statement simple Query
	Fields []Field // empty for a result without rows
	Copy   bool    // COPY TO STDOUT: Fields have no names, Format is the copy's
}

// ServerMessage is the text of an ErrorResponse or NoticeResponse that a
// hook may rewrite in place.
type ServerMessage struct {
	Severity, Code, Message, Detail, Hint, Where string
}

// RowFilter rewrites the rows of one result set. The proxy re-encodes each
// row with correct lengths; a row is never split or merged.
type RowFilter interface {
	// Row may replace values[i] with a new slice (nil = SQL NULL). The
	// slices in values are valid only during the call.
	Row(values [][]byte)
	// CopyData rewrites one CopyData message of a COPY TO STDOUT (text or
	// CSV: one or more whole lines). It returns the bytes to send.
	CopyData(data []byte) []byte
	// End is called once with the command tag (e.g. "SELECT 10") or, when
	// the result ended in an error, an empty tag and the SQLSTATE. An empty
	// query ends with ("", ""), as does a suspended portal that is dropped.
	End(tag string, sqlstate string)
}
