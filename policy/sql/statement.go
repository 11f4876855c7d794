// Package sql classifies SQL text with PostgreSQL's own parser (pg_query):
// what each statement does, which tables it reads and writes, which
// functions it calls, and flags a policy cares about. Pure: no I/O.
//
// Rule kept here: anything the parser rejects or the walker does not
// understand is classified Unknown, which policies treat as risky.
package sql

// Kind is what a statement does: "select", "insert", "update", "delete",
// "merge", "truncate", "create", "alter", "drop", "grant", "revoke", "role",
// "set", "reset", "show", "copy", "transaction", "prepare", "execute",
// "deallocate", "do", "call", "explain", "lock", "vacuum", "analyze",
// "listen", "notify", "unlisten", "discard", "comment", "other", "unknown".
type Kind string

const Unknown Kind = "unknown"

// Flag marks a property a policy can match on.
type Flag string

const (
	FlagNoWhere    Flag = "no_where"   // UPDATE/DELETE without WHERE (anywhere in the tree)
	FlagServerIO   Flag = "server_io"  // server-side file/program/network I/O
	FlagPrivilege  Flag = "privilege"  // GRANT/REVOKE/role changes
	FlagSetConfig  Flag = "set_config" // set_config() called
	FlagUnknown    Flag = "unknown"    // could not be classified
	FlagDDL        Flag = "ddl"        // schema change
	FlagWrite      Flag = "write"      // changes data
	FlagProcedural Flag = "procedural" // DO, CALL, CREATE FUNCTION/PROCEDURE
	FlagAlterSys   Flag = "alter_system"
	FlagDropDB     Flag = "drop_database"
	FlagCopyFrom   Flag = "copy_from"
)

// Statement is the classification of one statement.
type Statement struct {
	Text      string   `json:"text"`                // this statement's own text
	Kind      Kind     `json:"kind"`                // see Kind
	Object    string   `json:"object,omitempty"`    // DDL object type, SET parameter, COPY direction and target
	Reads     []string `json:"reads,omitempty"`     // tables read, schema-qualified when written so
	Writes    []string `json:"writes,omitempty"`    // tables written
	Functions []string `json:"functions,omitempty"` // every function called anywhere in the tree
	Flags     []Flag   `json:"flags,omitempty"`
	Shape     string   `json:"shape"` // fingerprint: constants removed; equal shapes judge alike
}
