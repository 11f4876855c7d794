// Package tui holds guardrun's terminal faces: the PTY host that runs the
// agent, the approval prompt drawn over it, the approvals view, the login
// spinner and the replay player.
//
// Entry points for cli:
//
//   - RunAgent: `guardrun -- AGENT` (and `guardrun connect NAME -- CLIENT`):
//     the agent on a PTY, approvals prompted inline from a Queue.
//   - RunPrompter: `guardrun connect NAME` on a TTY: a live status line and the
//     same prompt.
//   - RunApprovals: `guardrun approvals`: the pending requests of running
//     sessions, answered from a second terminal.
//
// tui consumes two interfaces it defines: Queue (pending approvals, from the
// session's broker or a control-socket client) and CastSink (the recorder's
// terminal.cast). Each file that draws states its rules of the terminal at
// the top (host.go, prompter.go, approvals.go). tui imports policy and
// recorder, never tunnel, cli or auth.
package tui
