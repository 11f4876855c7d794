//go:build tools

// Package dex pins the Dex OIDC provider that auth's end-to-end test signs
// in against. It is a module of its own so that Dex and its dependencies
// never enter guardrun's go.mod; the test builds
// github.com/dexidp/dex/cmd/dex from here and caches the binary.
package dex

import _ "github.com/dexidp/dex/cmd/dex"
