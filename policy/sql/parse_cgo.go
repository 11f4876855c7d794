//go:build cgo

package sql

import pg_query "github.com/pganalyze/pg_query_go/v6"

// parse runs PostgreSQL's own parser (libpg_query through cgo).
func parse(text string) (*pg_query.ParseResult, error) {
	return pg_query.Parse(text)
}
