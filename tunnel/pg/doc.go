// Package pg is guardrun's PostgreSQL protocol proxy: a loopback server that
// clients log in to with the per-tunnel credential, and one real upstream
// connection per client that guardrun opens with the real credential. Every
// message in between is read, checked and relayed; the SQL is judged and the
// results filtered through the hooks in hooks.go.
//
// Rules this package keeps:
//
//   - Fail closed. A message that does not frame, is larger than the cap, or
//     does not parse ends that connection with FATAL 08P01 and is never
//     forwarded, not even in part; other connections carry on. A server answer
//     that does not fit the requests in flight (so rows could be matched to
//     the wrong columns) ends the connection the same way. A panicking,
//     cancelled or confused inspector refuses; a panicking result hook ends
//     the connection. A lost upstream gives the client FATAL 08006.
//   - Nothing is judged after it was forwarded: a Query, Parse or
//     FunctionCall reaches the server only after Inspect returned Forward or
//     Rewrite, and a refused one never reaches it (see Inspector for how).
//   - Streaming, flat memory: one message at a time, never a whole result.
//     Messages are framed from a buffered reader and relayed as raw bytes when
//     no hook changes them (a DataRow nobody filters is validated in place,
//     not decoded or re-encoded); a filtered row is re-encoded with correct
//     lengths into a reused buffer. Output is flushed exactly when the input
//     runs dry, so a pipeline costs one write per read, as a byte relay.
//   - Buffer lifetimes: a message's bytes are valid until the next message is
//     read from the same side. Everything handed to a hook is valid only
//     during the call; hooks copy what they keep.
//   - Goroutines: Serve owns one handler goroutine per client connection and
//     returns only after all have exited. A handler runs the handshake and
//     then the client-to-server loop itself, and starts exactly one
//     server-to-client goroutine, which it waits for. Inspect runs on the
//     client-to-server goroutine, the Results methods on the
//     server-to-client one. Only one goroutine writes to the client at any
//     time: the handler before the relay starts and after it ends, the
//     server-to-client loop in between. Cancelling Serve's context unblocks
//     every read, write and Inspect of every connection.
//   - Every handshake has a deadline (Config.HandshakeTimeout): the client's
//     startup and SCRAM exchange and the upstream connect.
//   - The client never learns the upstream's credential or backend keys:
//     clients get guardrun's own random BackendKeyData; a CancelRequest with
//     those keys is mapped to the upstream's and sent over a new connection
//     in the upstream's TLS mode.
package pg
