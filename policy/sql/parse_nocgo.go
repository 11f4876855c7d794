//go:build !cgo

package sql

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	wasm "github.com/wasilibs/go-pgquery"
)

// parse runs PostgreSQL's own parser (libpg_query compiled to WebAssembly,
// for builds without cgo). It returns the same tree as the cgo build.
func parse(text string) (*pg_query.ParseResult, error) {
	return wasm.Parse(text)
}
