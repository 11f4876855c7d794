// Package mask finds secrets and personal data in values and replaces them.
// Pure and allocation-aware: a Masker is immutable and safe for concurrent
// use; a Plan is made once per result set and applied to every row.
package mask
