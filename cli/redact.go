package cli

import "regexp"

var (
	urlPasswordRE = regexp.MustCompile(`(?i)\b(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@`)
	kvPasswordRE  = regexp.MustCompile(`(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// redactDSN removes passwords from anything that may quote a connection
// string, so that help, errors and logs never show one.
func redactDSN(s string) string {
	s = urlPasswordRE.ReplaceAllString(s, "${1}xxxxx@")
	return kvPasswordRE.ReplaceAllString(s, "${1}xxxxx")
}
