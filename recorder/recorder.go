// Package recorder keeps the session record: a hash-chained event log, the
// terminal cast, the seal; and reads, verifies and exports it.
//
// Rules kept here: never store an unmasked secret (callers pass text that
// is already masked), the real upstream credential or a token; directories
// 0700, files 0600; a crash leaves a verifiable prefix.
//
// # Layout
//
// A store is a directory holding store.jsonl (the store's own chain:
// creations, seals and prunes) and one directory per session, named by its
// id (a lower-case ULID: sortable by start time; the first eight characters
// usually name it). A session directory holds:
//
//   - events.jsonl: one event per line, hash-chained (below);
//   - terminal.cast: asciicast v2 of the agent's terminal, when there is one;
//   - seal.json: written on a clean end, signed with the device key.
//
// # Canonical JSON and the chain
//
// Every line of events.jsonl and store.jsonl is one JSON object in
// canonical form, followed by "\n":
//
//   - object keys sorted by their code points, each key once;
//   - no whitespace outside strings; "," and ":" as separators;
//   - strings escaped as \" \\ \b \f \n \r \t, every other character
//     below U+0020 and every non-ASCII character as \uxxxx (lower-case
//     hex; characters above U+FFFF as a UTF-16 surrogate pair); all else,
//     DEL included, as itself;
//   - numbers are integers only, without exponent or leading zeros;
//   - true, false, null as themselves.
//
// This is exactly Python's json.dumps(obj, sort_keys=True,
// separators=(",", ":")). Each line has "seq" (1, 2, ...), "time" (UTC,
// RFC 3339 with microseconds), "type", the event's own fields, "prev" and
// "hash". prev is the previous line's hash (64 zeros on the first line);
// hash is the lower-case hex SHA-256 of prev's 64 ASCII characters followed
// by the canonical bytes of the line's object without its "hash" member.
// To check a record with standard tools:
//
//	python3 -c 'import json,hashlib
//	prev="0"*64
//	for n,l in enumerate(open("events.jsonl"),1):
//	    d=json.loads(l); h=d.pop("hash"); assert d["prev"]==prev and d["seq"]==n, n
//	    c=json.dumps(d,sort_keys=True,separators=(",",":"))
//	    assert hashlib.sha256((prev+c).encode()).hexdigest()==h, n
//	    prev=h
//	print("chain ok, last hash", prev)'
//
// Checkpoint events bind the cast: their cast_sha256 is the SHA-256 of the
// first cast_bytes bytes of terminal.cast. The seal binds the last line
// (last_seq, last_hash) and the whole cast; its signature is ed25519 over
// the canonical JSON of seal.json without "signature".
//
// # Durability
//
// Record never waits for the disk. Each Session has one writer goroutine
// that writes and fsyncs the cast, then the checkpoint that binds it, then
// the event lines, as soon as events arrive and at least every 50 ms. After
// a crash every line up to the last completed group verifies; a torn final
// line is the mark of a crash, not of tampering, and the session reads as
// "ended abnormally".
package recorder
