// Package auth signs the developer in with the OAuth 2.0 device
// authorization grant (RFC 8628) against the organisation's OIDC issuer,
// verifies the ID token, and stores tokens in the OS keyring.
package auth
