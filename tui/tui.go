// Package tui holds guardrun's terminal faces: the PTY host that runs the
// agent, the approval prompt drawn over it, the approvals view, the login
// spinner and the replay player.
package tui
