package tui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// sqlKeywordList are the words the prompt highlights. It is a display aid,
// not a parser: the classification the human reads comes from policy/sql.
const sqlKeywordList = `ALTER AND ANALYZE AS ASC BEGIN BY CALL CASCADE CASE CHECK COMMIT CONSTRAINT COPY CREATE
CROSS CURRENT_DATE CURRENT_TIMESTAMP DATABASE DEFAULT DELETE DESC DISTINCT DO DROP ELSE END EXCEPT EXECUTE EXISTS
EXPLAIN FALSE FETCH FOR FOREIGN FROM FULL FUNCTION GRANT GROUP HAVING IF ILIKE IN INDEX INNER INSERT INTERSECT INTERVAL
INTO IS JOIN KEY LEFT LIKE LIMIT LOCK NOT NOTHING NULL OFFSET ON OR ORDER OUTER OWNER PRIMARY PROCEDURE PROGRAM
REFERENCES RENAME REPLACE RETURNING REVOKE RIGHT ROLE ROLLBACK SCHEMA SELECT SEQUENCE SET TABLE TO TRIGGER TRUE
TRUNCATE UNION UNIQUE UPDATE USING VACUUM VALUES VIEW WHEN WHERE WITH`

func isKeyword(w string) bool {
	if len(w) < 2 || len(w) > 17 {
		return false
	}
	u := strings.ToUpper(w)
	// A word match against the list: the list is short and this runs once per
	// frame on a statement a human reads, so a scan is plenty.
	i := strings.Index(sqlKeywordList, u)
	for i >= 0 {
		before := i == 0 || sqlKeywordList[i-1] == ' ' || sqlKeywordList[i-1] == '\n'
		end := i + len(u)
		after := end == len(sqlKeywordList) || sqlKeywordList[end] == ' ' || sqlKeywordList[end] == '\n'
		if before && after {
			return true
		}
		next := strings.Index(sqlKeywordList[i+1:], u)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

// sqlState carries a literal or comment that continues onto the next line.
type sqlState int

const (
	sqlPlain sqlState = iota
	sqlInString
	sqlInQuotedIdent
	sqlInBlockComment
)

// wrapSQL wraps a statement to width columns (tabs expanded, word
// boundaries preferred, long words broken) and highlights it line by line.
func wrapSQL(st Styles, sql string, width int) []string {
	if width < 1 {
		width = 1
	}
	sql = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(sql, "\r\n", "\n"), "\t", "    "))
	if sql == "" {
		return []string{""}
	}
	plain := strings.Split(ansi.Wrap(ansi.Strip(sql), width, ""), "\n")
	out := make([]string, len(plain))
	state := sqlPlain
	for i, line := range plain {
		out[i], state = highlightSQLLine(st, strings.TrimRight(line, " "), state)
	}
	return out
}

// highlightSQLLine paints one line, starting in state, and returns the state
// at its end.
func highlightSQLLine(st Styles, line string, state sqlState) (string, sqlState) {
	var b strings.Builder
	i := 0
	for i < len(line) {
		switch state {
		case sqlInString, sqlInQuotedIdent, sqlInBlockComment:
			closer := "'"
			style := st.Literal
			switch state {
			case sqlInQuotedIdent:
				closer, style = `"`, st.Meta
			case sqlInBlockComment:
				closer, style = "*/", st.Comment
			}
			j := strings.Index(line[i:], closer)
			if j < 0 {
				b.WriteString(st.paint(style, line[i:]))
				return b.String(), state
			}
			end := i + j + len(closer)
			b.WriteString(st.paint(style, line[i:end]))
			i, state = end, sqlPlain
			continue
		}
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			open, style := sqlInString, st.Literal
			if c == '"' {
				open, style = sqlInQuotedIdent, st.Meta
			}
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				b.WriteString(st.paint(style, line[i:]))
				return b.String(), open
			}
			end := i + 1 + j + 1
			b.WriteString(st.paint(style, line[i:end]))
			i = end
		case c == '-' && i+1 < len(line) && line[i+1] == '-':
			b.WriteString(st.paint(st.Comment, line[i:]))
			return b.String(), sqlPlain
		case c == '/' && i+1 < len(line) && line[i+1] == '*':
			state = sqlInBlockComment
			b.WriteString(st.paint(st.Comment, "/*"))
			i += 2
		case isWordByte(c):
			j := i
			for j < len(line) && isWordByte(line[j]) {
				j++
			}
			w := line[i:j]
			switch {
			case isKeyword(w):
				b.WriteString(st.paint(st.Keyword, w))
			case w[0] >= '0' && w[0] <= '9':
				b.WriteString(st.paint(st.Literal, w))
			default:
				b.WriteString(w)
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), state
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
