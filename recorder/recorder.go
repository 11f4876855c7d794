// Package recorder keeps the session record: a hash-chained event log, the
// terminal cast, the seal; and reads, verifies and exports it.
//
// Rules kept here: never store an unmasked secret (callers pass text that
// is already masked), the real upstream credential or a token; directories
// 0700, files 0600; a crash leaves a verifiable prefix.
package recorder
