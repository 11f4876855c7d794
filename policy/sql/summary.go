package sql

import (
	"fmt"
	"strings"
)

// Summary describes s in short lines for a human deciding about it (the
// approval prompt): what it writes and reads, what it calls, and why each
// risky flag was set.
//
//	writes public.orders
//	reads public.users
//	calls pg_read_file
//	DELETE on public.orders has no WHERE clause
func (s Statement) Summary() []string {
	var out []string
	if s.Inner != nil && s.Kind == "prepare" {
		out = append(out, fmt.Sprintf("prepares %s: %s", orUnnamed(s.Name), headline(*s.Inner)))
	} else if s.Inner != nil && s.Kind != "explain" {
		out = append(out, "EXPLAIN ANALYZE runs the statement")
	}
	switch {
	case schemaKind(s.Kind):
		out = append(out, headline(s))
	case len(s.Writes) > 0:
		out = append(out, "writes "+strings.Join(s.Writes, ", "))
	}
	if len(s.Reads) > 0 {
		out = append(out, "reads "+strings.Join(s.Reads, ", "))
	}
	var whys []string
	for _, f := range []Flag{FlagUnknown, FlagServerIO, FlagAlterSys, FlagDropDB, FlagPrivilege, FlagNoWhere,
		FlagDynamicSQL, FlagSetConfig, FlagProcedural, FlagCopyFrom} {
		for _, why := range s.Why(f) {
			if !contains(whys, why) {
				whys = append(whys, why)
			}
		}
	}
	// Functions a reason already names are not listed again.
	var fs []string
	for _, f := range s.Functions {
		base := f[strings.LastIndexByte(f, '.')+1:]
		named := false
		for _, why := range whys {
			if strings.Contains(why, base+" ") || strings.Contains(why, base+"(") {
				named = true
			}
		}
		if !named {
			fs = append(fs, f)
		}
	}
	if len(fs) > 0 {
		more := ""
		if len(fs) > 8 {
			fs, more = fs[:8], fmt.Sprintf(" and %d more", len(fs)-8)
		}
		out = append(out, "calls "+strings.Join(fs, ", ")+more)
	}
	out = append(out, whys...)
	if len(out) == 0 && s.Kind == "execute" {
		out = append(out, fmt.Sprintf("executes prepared statement %s (judged by what was prepared)", orUnnamed(s.Name)))
	}
	if len(out) == 0 {
		out = append(out, headline(s))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orUnnamed(name string) string {
	if name == "" {
		return "the unnamed statement"
	}
	return name
}

// headline names what s does in a few words: "DELETE on public.users",
// "DROP TABLE public.t", "SET search_path", "BEGIN".
func headline(s Statement) string {
	up := func(x string) string { return strings.ToUpper(strings.ReplaceAll(x, "_", " ")) }
	verb := up(string(s.Kind))
	writes := strings.Join(s.Writes, ", ")
	with := func(h, sep, names string) string {
		if names == "" {
			return h
		}
		return h + sep + names
	}
	switch s.Kind {
	case "set", "reset", "show":
		return with(verb, " ", s.Object)
	case "transaction", "role":
		return up(s.Object)
	case "create", "alter", "drop", "comment", "security_label", "refresh":
		return with(with(verb, " ", up(s.Object)), " ", writes)
	case "grant", "revoke":
		return with(with(verb, " on ", up(s.Object)), " ", writes)
	case "prepare", "execute", "deallocate":
		return with(with(verb, " ", s.Name), " ", up(s.Object))
	case "copy":
		tables := writes
		if tables == "" {
			tables = strings.Join(s.Reads, ", ")
		}
		return with(with(verb, " ", up(s.Object)), ", ", tables)
	}
	switch {
	case writes != "":
		return verb + " on " + writes
	case len(s.Reads) > 0 && (s.Kind == "select" || s.Kind == "explain"):
		return verb + " from " + strings.Join(s.Reads, ", ")
	case s.Object != "" && s.Kind != "select":
		return verb + " " + up(s.Object)
	}
	return verb
}

// schemaKind reports kinds whose headline already names what they change.
func schemaKind(k Kind) bool {
	switch k {
	case "create", "alter", "drop", "comment", "security_label", "grant", "revoke", "role":
		return true
	}
	return false
}

// Headline names what s does in a few words ("DELETE on public.users").
func (s Statement) Headline() string { return headline(s) }
