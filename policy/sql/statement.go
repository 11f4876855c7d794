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
// "listen", "notify", "unlisten", "discard", "comment", "other", "unknown";
// also "fetch" (FETCH, MOVE), "close", "cluster", "reindex", "refresh"
// (REFRESH MATERIALIZED VIEW), "checkpoint", "load" and "security_label";
// "function_call" is what the tunnel calls a FunctionCall protocol message.
// DECLARE CURSOR is a "select" whose Object is "cursor".
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
	FlagDynamicSQL Flag = "dynamic_sql" // runs SQL given as a string (query_to_xml, ...)
)

// Flags lists every flag the classifier sets, for validating policies.
func Flags() []Flag {
	return []Flag{FlagNoWhere, FlagServerIO, FlagPrivilege, FlagSetConfig, FlagUnknown, FlagDDL,
		FlagWrite, FlagProcedural, FlagAlterSys, FlagDropDB, FlagCopyFrom, FlagDynamicSQL}
}

// Kinds lists every Kind the classifier produces, for validating policies.
func Kinds() []Kind {
	return []Kind{"select", "insert", "update", "delete", "merge", "truncate", "create", "alter", "drop",
		"grant", "revoke", "role", "set", "reset", "show", "copy", "transaction", "prepare", "execute",
		"deallocate", "do", "call", "explain", "lock", "vacuum", "analyze", "listen", "notify", "unlisten",
		"discard", "comment", "other", "unknown", "fetch", "close", "cluster", "reindex", "refresh",
		"checkpoint", "load", "security_label", "function_call"}
}

// Statement is the classification of one statement. Table and function
// names are as PostgreSQL reads them (unquoted identifiers folded to lower
// case, quoted ones verbatim, parts joined with dots), sorted and unique.
// Statements from a Classifier share their slices with its cache: treat
// them as read-only.
type Statement struct {
	Text      string   `json:"text"`                // this statement's own text
	Kind      Kind     `json:"kind"`                // see Kind
	Object    string   `json:"object,omitempty"`    // DDL object type, SET parameter, COPY direction and target
	Reads     []string `json:"reads,omitempty"`     // tables read, schema-qualified when written so
	Writes    []string `json:"writes,omitempty"`    // tables written, and tables a DDL or GRANT changes
	Functions []string `json:"functions,omitempty"` // every function called anywhere in the tree
	Flags     []Flag   `json:"flags,omitempty"`
	Shape     string   `json:"shape"` // fingerprint: constants removed; equal shapes judge alike

	// Kinds is Kind followed by the kinds of the data-modifying statements
	// nested in it (a DELETE in a CTE or in COPY (...) TO STDOUT), so that a
	// rule on "delete" also sees a DELETE hidden inside a SELECT.
	Kinds []Kind `json:"kinds,omitempty"`
	// Name is the prepared statement's name for PREPARE, EXECUTE and
	// DEALLOCATE ("" with Object "all" for DEALLOCATE ALL).
	Name string `json:"name,omitempty"`
	// Inner is the statement PREPARE prepares or EXPLAIN explains. Its Text
	// is the outer statement's text. PREPARE carries the inner's tables,
	// functions and flags too; plain EXPLAIN only its reads, functions and
	// the flags those functions raise (it runs nothing else). EXPLAIN
	// ANALYZE runs its statement, so it is classified as that statement
	// (Kind "delete" for EXPLAIN ANALYZE DELETE) with Object "explain analyze".
	Inner *Statement `json:"inner,omitempty"`

	notes []note // why a flag was set, in words, for Summary and Why
}

type note struct {
	flag     Flag
	text     string
	fromFunc bool // raised by a function call
}

// Why returns the reasons, in words, that flag f was set on s ("calls
// pg_read_file (server-side file access)"). It returns one generic line for
// a flag without recorded reasons and nothing for a flag s does not have.
func (s Statement) Why(f Flag) []string {
	if !s.Has(f) {
		return nil
	}
	var out []string
	for _, n := range s.notes {
		if n.flag == f {
			out = append(out, n.text)
		}
	}
	if len(out) == 0 {
		out = append(out, genericWhy(f, s))
	}
	return out
}

// Has reports whether s carries flag f.
func (s Statement) Has(f Flag) bool {
	for _, g := range s.Flags {
		if g == f {
			return true
		}
	}
	return false
}
