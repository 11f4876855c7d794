package sql

import (
	"fmt"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// walker collects what one statement does. It visits every message of the
// parse tree through protobuf reflection, so no child is ever skipped; the
// node types that mean something (statements, table references, function
// calls) have handlers, everything else is walked field by field. A
// statement type without a handler makes the statement unknown.
type walker struct {
	reads, writes, funcs []string
	flags                map[Flag]bool
	notes                []note
	dml                  []Kind     // kinds of data-modifying statements met (nested or not)
	scopes               [][]string // CTE names visible, innermost last
	sensitive            bool       // the classification read a constant's value
	unknown              []string   // why the statement could not be classified
	inner                *Statement // PREPARE's or EXPLAIN's statement
	name                 string     // prepared statement name
	depth                int
}

const maxDepth = 2000

func newWalker() *walker { return &walker{flags: map[Flag]bool{}} }

func (w *walker) flag(f Flag, why string) { w.note(f, why, false) }

// note sets flag f; fromFunc says a function call raised it (such flags
// stay with a plain EXPLAIN, whose planning may run functions).
func (w *walker) note(f Flag, why string, fromFunc bool) {
	w.flags[f] = true
	if why != "" {
		n := note{flag: f, text: why, fromFunc: fromFunc}
		if !slices.Contains(w.notes, n) {
			w.notes = append(w.notes, n)
		}
	}
}

func (w *walker) fnote(f Flag, why string) { w.note(f, why, true) }

func (w *walker) unknownf(format string, args ...any) {
	why := fmt.Sprintf(format, args...)
	w.unknown = append(w.unknown, why)
	w.flag(FlagUnknown, why)
}

func addName(list []string, name string) []string {
	if name == "" || slices.Contains(list, name) {
		return list
	}
	return append(list, name)
}

func rangeVarName(rv *pg.RangeVar) string {
	parts := make([]string, 0, 3)
	for _, p := range []string{rv.Catalogname, rv.Schemaname, rv.Relname} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}

// listName joins a name given as a list of String nodes ("public", "users").
func listName(items []*pg.Node) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.GetNode().(*pg.Node_String_)
		if !ok {
			return ""
		}
		parts = append(parts, s.String_.Sval)
	}
	return strings.Join(parts, ".")
}

func (w *walker) inCTE(name string) bool {
	for i := len(w.scopes) - 1; i >= 0; i-- {
		if slices.Contains(w.scopes[i], name) {
			return true
		}
	}
	return false
}

func (w *walker) read(rv *pg.RangeVar) {
	if rv == nil {
		return
	}
	if rv.Schemaname == "" && rv.Catalogname == "" && w.inCTE(rv.Relname) {
		return // a reference to a WITH query, not a table
	}
	w.reads = addName(w.reads, rangeVarName(rv))
}

// write records a table the statement writes or changes. Targets of
// INSERT/UPDATE/DELETE/MERGE are always tables: CTE names do not apply.
func (w *walker) write(rv *pg.RangeVar) {
	if rv != nil {
		w.writes = addName(w.writes, rangeVarName(rv))
	}
}

// catalogs are system catalogs a statement may name without pg_catalog.
var catalogs = map[string]bool{
	"pg_settings": true, "pg_authid": true, "pg_auth_members": true, "pg_database": true, "pg_class": true,
	"pg_proc": true, "pg_namespace": true, "pg_attribute": true, "pg_shadow": true, "pg_user": true,
	"pg_roles": true, "pg_db_role_setting": true, "pg_largeobject": true, "pg_largeobject_metadata": true,
	"pg_default_acl": true, "pg_init_privs": true, "pg_policy": true, "pg_trigger": true,
	"pg_event_trigger": true, "pg_extension": true, "pg_foreign_server": true, "pg_user_mapping": true,
	"pg_subscription": true, "pg_language": true, "pg_type": true, "pg_index": true, "pg_constraint": true,
	"pg_rewrite": true, "pg_tablespace": true, "pg_statistic": true, "pg_seclabel": true,
}

// dmlWrite records the target of a data-modifying statement. Changing rows
// of the system catalogs changes the database's own rules (and an UPDATE
// of pg_settings is a set_config call).
func (w *walker) dmlWrite(rv *pg.RangeVar) {
	w.write(rv)
	if rv == nil || rv.Catalogname != "" && rv.Schemaname == "" {
		return
	}
	rel := strings.ToLower(rv.Relname)
	if !(strings.EqualFold(rv.Schemaname, "pg_catalog") || rv.Schemaname == "" && catalogs[rel]) {
		return
	}
	w.flag(FlagPrivilege, fmt.Sprintf("writes the system catalog %s", rangeVarName(rv)))
	if rel == "pg_settings" {
		w.flag(FlagSetConfig, "writing pg_settings changes settings of the session (like set_config)")
	}
}

// node walks one Node (a oneof wrapper around the real message).
func (w *walker) node(n *pg.Node) {
	if n == nil {
		return
	}
	m := n.ProtoReflect()
	od := m.Descriptor().Oneofs().Get(0)
	fd := m.WhichOneof(od)
	if fd == nil {
		return
	}
	if fd.Kind() != protoreflect.MessageKind {
		return
	}
	w.visit(m.Get(fd).Message())
}

func (w *walker) nodes(ns []*pg.Node) {
	for _, n := range ns {
		w.node(n)
	}
}

// fields walks every message-valued field of m except those named in skip.
func (w *walker) fields(m protoreflect.Message, skip ...protoreflect.Name) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || slices.Contains(skip, fd.Name()) {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.visit(l.Get(i).Message())
			}
		} else if !fd.IsMap() {
			w.visit(v.Message())
		}
		return true
	})
}

// visit handles one message of the tree.
func (w *walker) visit(m protoreflect.Message) {
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > maxDepth {
		if len(w.unknown) == 0 {
			w.unknownf("the statement is nested too deeply to inspect")
		}
		return
	}
	switch x := m.Interface().(type) {
	case *pg.Node:
		w.node(x)
	case *pg.RangeVar:
		w.read(x)
	case *pg.FuncCall:
		w.funcCall(x)
		w.fields(m)
	case *pg.WithClause:
		// Reached only outside a statement handler; treat its CTEs as
		// visible to nothing but themselves.
		w.with(x, func() {})
	default:
		name := string(m.Descriptor().Name())
		if strings.HasSuffix(name, "Stmt") {
			w.stmt(m)
			return
		}
		w.fields(m)
	}
}

// with walks a WITH clause and then body with the CTE names in scope.
// A non-recursive CTE sees only the CTEs before it; a recursive WITH makes
// every name visible everywhere.
func (w *walker) with(wc *pg.WithClause, body func()) {
	if wc == nil {
		body()
		return
	}
	w.scopes = append(w.scopes, nil)
	top := len(w.scopes) - 1
	names := make([]string, 0, len(wc.Ctes))
	for _, c := range wc.Ctes {
		if cte := c.GetCommonTableExpr(); cte != nil {
			names = append(names, cte.Ctename)
		}
	}
	if wc.Recursive {
		w.scopes[top] = names
	}
	for _, c := range wc.Ctes {
		w.node(c)
		if cte := c.GetCommonTableExpr(); cte != nil && !wc.Recursive {
			w.scopes[top] = append(w.scopes[top], cte.Ctename)
		}
	}
	body()
	w.scopes = w.scopes[:top]
}

// Functions that reach outside the database from the server.
var serverIOFuncs = map[string]string{
	"pg_read_file":            "server-side file access",
	"pg_read_binary_file":     "server-side file access",
	"pg_ls_dir":               "server-side file access",
	"pg_stat_file":            "server-side file access",
	"pg_ls_logdir":            "server-side file access",
	"pg_ls_waldir":            "server-side file access",
	"pg_ls_tmpdir":            "server-side file access",
	"pg_ls_archive_statusdir": "server-side file access",
	"pg_ls_logicalsnapdir":    "server-side file access",
	"pg_ls_logicalmapdir":     "server-side file access",
	"pg_ls_replslotdir":       "server-side file access",
	"pg_ls_summariesdir":      "server-side file access",
	"pg_file_write":           "server-side file access",
	"pg_file_rename":          "server-side file access",
	"pg_file_unlink":          "server-side file access",
	"pg_file_sync":            "server-side file access",
	"pg_logdir_ls":            "server-side file access",
	"lo_import":               "reads a file on the database server",
	"lo_export":               "writes a file on the database server",
}

// Functions that run SQL they receive as a string.
var dynamicSQLFuncs = map[string]bool{
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"table_to_xml": true, "table_to_xmlschema": true, "table_to_xml_and_xmlschema": true,
	"schema_to_xml": true, "schema_to_xmlschema": true, "schema_to_xml_and_xmlschema": true,
	"database_to_xml": true, "database_to_xmlschema": true, "database_to_xml_and_xmlschema": true,
}

func (w *walker) funcCall(fc *pg.FuncCall) {
	name := listName(fc.Funcname)
	if name == "" {
		w.unknownf("a function call guardrun cannot name")
		return
	}
	w.funcs = addName(w.funcs, name)
	base := strings.ToLower(name[strings.LastIndexByte(name, '.')+1:])
	if why, ok := serverIOFuncs[base]; ok {
		w.fnote(FlagServerIO, fmt.Sprintf("calls %s (%s)", base, why))
	}
	if strings.HasPrefix(base, "dblink") {
		w.fnote(FlagServerIO, fmt.Sprintf("calls %s (connects from the database server to another server)", base))
	}
	if dynamicSQLFuncs[base] {
		w.fnote(FlagDynamicSQL, fmt.Sprintf("calls %s, which runs SQL given as a string", base))
	}
	if base == "set_config" {
		w.fnote(FlagSetConfig, "calls set_config (changes a setting of the session)")
		param, isConst := "", false
		if len(fc.Args) > 0 {
			if c := fc.Args[0].GetAConst(); c != nil {
				if s := c.GetSval(); s != nil {
					param, isConst = strings.ToLower(s.Sval), true
				}
			}
		}
		if isConst {
			w.sensitive = true // the verdict depends on this literal
			if param == "role" || param == "session_authorization" {
				w.fnote(FlagPrivilege, fmt.Sprintf("set_config('%s', ...) changes the role the session acts as", param))
			}
		} else {
			w.fnote(FlagPrivilege, "set_config with a parameter name guardrun cannot see could change the session's role")
		}
	}
}

// objectName turns OBJECT_FOREIGN_TABLE into "foreign table".
func objectName(t pg.ObjectType) string {
	s := strings.ToLower(strings.TrimPrefix(t.String(), "OBJECT_"))
	switch s {
	case "matview":
		return "materialized view"
	case "fdw":
		return "foreign data wrapper"
	case "foreign_server":
		return "server"
	case "tsconfiguration":
		return "text search configuration"
	case "tsdictionary":
		return "text search dictionary"
	case "tsparser":
		return "text search parser"
	case "tstemplate":
		return "text search template"
	case "opclass":
		return "operator class"
	case "opfamily":
		return "operator family"
	case "amop":
		return "operator of access method"
	case "amproc":
		return "function of access method"
	case "largeobject":
		return "large object"
	}
	return strings.ReplaceAll(s, "_", " ")
}

func tableLike(t pg.ObjectType) bool {
	switch t {
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW,
		pg.ObjectType_OBJECT_FOREIGN_TABLE, pg.ObjectType_OBJECT_SEQUENCE, pg.ObjectType_OBJECT_INDEX:
		return true
	}
	return false
}

func serverObject(t pg.ObjectType) bool {
	switch t {
	case pg.ObjectType_OBJECT_FDW, pg.ObjectType_OBJECT_FOREIGN_SERVER, pg.ObjectType_OBJECT_USER_MAPPING,
		pg.ObjectType_OBJECT_SUBSCRIPTION, pg.ObjectType_OBJECT_TABLESPACE:
		return true
	}
	return false
}

func (w *walker) dmlKind(k Kind) {
	w.dml = append(w.dml, k)
	w.flag(FlagWrite, "")
}

func (w *walker) noWhere(k string, rv *pg.RangeVar) {
	w.flag(FlagNoWhere, fmt.Sprintf("%s on %s has no WHERE clause", k, rangeVarName(rv)))
}

func (w *walker) ddl() { w.flag(FlagDDL, "") }

// Extensions that reach outside the database or run untrusted code.
var riskyExtensions = map[string]bool{
	"adminpack": true, "dblink": true, "file_fdw": true, "postgres_fdw": true, "lo": true,
	"plpython3u": true, "plpythonu": true, "plperlu": true, "pltclu": true, "plsh": true,
	"mysql_fdw": true, "oracle_fdw": true, "tds_fdw": true, "multicorn": true, "pg_cron": true,
}

// stmt handles a statement node (top level or nested) and returns its kind
// and object.
func (w *walker) stmt(m protoreflect.Message) (Kind, string) {
	switch x := m.Interface().(type) {
	case *pg.SelectStmt:
		obj := ""
		w.with(x.WithClause, func() {
			if x.IntoClause != nil {
				obj = "into"
				w.dml = append(w.dml, "create") // it creates a table: not a plain select
				w.write(x.IntoClause.Rel)
				w.ddl()
				w.flag(FlagWrite, fmt.Sprintf("SELECT INTO creates table %s", rangeVarName(x.IntoClause.Rel)))
				w.fields(x.IntoClause.ProtoReflect(), "rel")
			}
			w.fields(m, "with_clause", "into_clause")
		})
		return "select", obj
	case *pg.InsertStmt:
		w.with(x.WithClause, func() {
			w.dmlWrite(x.Relation)
			w.fields(m, "with_clause", "relation")
		})
		w.dmlKind("insert")
		return "insert", ""
	case *pg.UpdateStmt:
		w.with(x.WithClause, func() {
			w.dmlWrite(x.Relation)
			if x.WhereClause == nil {
				w.noWhere("UPDATE", x.Relation)
			}
			w.fields(m, "with_clause", "relation")
		})
		w.dmlKind("update")
		return "update", ""
	case *pg.DeleteStmt:
		w.with(x.WithClause, func() {
			w.dmlWrite(x.Relation)
			if x.WhereClause == nil {
				w.noWhere("DELETE", x.Relation)
			}
			w.fields(m, "with_clause", "relation")
		})
		w.dmlKind("delete")
		return "delete", ""
	case *pg.MergeStmt:
		w.with(x.WithClause, func() {
			w.dmlWrite(x.Relation)
			w.fields(m, "with_clause", "relation")
		})
		w.dmlKind("merge")
		return "merge", ""
	case *pg.TruncateStmt:
		for _, r := range x.Relations {
			w.dmlWrite(r.GetRangeVar())
		}
		w.fields(m, "relations")
		w.dmlKind("truncate")
		return "truncate", ""
	case *pg.CopyStmt:
		dir, target := "to", "stdout"
		if x.IsFrom {
			dir, target = "from", "stdin"
		}
		switch {
		case x.IsProgram:
			target = "program"
			w.flag(FlagServerIO, fmt.Sprintf("COPY %s PROGRAM runs a program on the database server", strings.ToUpper(dir)))
		case x.Filename != "":
			target = "file"
			w.flag(FlagServerIO, fmt.Sprintf("COPY %s a file on the database server's file system", strings.ToUpper(dir)))
		}
		if x.Relation != nil {
			if x.IsFrom {
				w.dmlWrite(x.Relation)
			} else {
				w.read(x.Relation)
			}
		}
		if x.IsFrom {
			w.flag(FlagCopyFrom, "COPY FROM loads rows into "+rangeVarName(x.Relation))
			w.dmlKind("copy")
		}
		w.fields(m, "relation")
		return "copy", dir + " " + target
	case *pg.ExplainStmt:
		return w.explain(x)
	case *pg.PrepareStmt:
		inner, sens := classifyNode(x.Query)
		w.inner, w.sensitive = &inner, w.sensitive || sens
		w.absorb(inner, true)
		w.fields(m, "query")
		w.name = x.Name
		return "prepare", ""
	case *pg.ExecuteStmt:
		w.fields(m)
		w.name = x.Name
		return "execute", ""
	case *pg.DeallocateStmt:
		w.name = x.Name
		if x.Isall {
			return "deallocate", "all"
		}
		return "deallocate", ""
	case *pg.DeclareCursorStmt:
		w.fields(m)
		return "select", "cursor"
	case *pg.FetchStmt:
		return "fetch", ""
	case *pg.ClosePortalStmt:
		return "close", ""
	case *pg.TransactionStmt:
		obj := strings.ToLower(strings.TrimPrefix(x.Kind.String(), "TRANS_STMT_"))
		return "transaction", strings.ReplaceAll(obj, "_", " ")
	case *pg.VariableSetStmt:
		name := strings.ToLower(x.Name)
		kind := Kind("set")
		switch x.Kind {
		case pg.VariableSetKind_VAR_RESET:
			kind = "reset"
		case pg.VariableSetKind_VAR_RESET_ALL:
			kind, name = "reset", "all"
		}
		if name == "role" || name == "session_authorization" {
			w.flag(FlagPrivilege, fmt.Sprintf("%s %s changes the role the session acts as", strings.ToUpper(string(kind)), strings.ToUpper(strings.ReplaceAll(name, "_", " "))))
		}
		w.fields(m)
		return kind, name
	case *pg.VariableShowStmt:
		return "show", strings.ToLower(x.Name)
	case *pg.ConstraintsSetStmt:
		return "set", "constraints"
	case *pg.AlterSystemStmt:
		w.flag(FlagAlterSys, "ALTER SYSTEM changes the server's configuration")
		w.flag(FlagServerIO, "ALTER SYSTEM writes the server's configuration file")
		w.fields(m)
		return "alter", "system"
	case *pg.DoStmt:
		w.flag(FlagProcedural, "DO runs procedural code on the database server")
		w.fields(m)
		return "do", ""
	case *pg.CallStmt:
		w.flag(FlagProcedural, "CALL runs a procedure")
		w.fields(m)
		return "call", ""
	case *pg.CreateFunctionStmt:
		obj := "function"
		if x.IsProcedure {
			obj = "procedure"
		}
		w.ddl()
		w.flag(FlagProcedural, fmt.Sprintf("CREATE %s defines code that runs on the database server", strings.ToUpper(obj)))
		w.fields(m)
		return "create", obj
	case *pg.CreatePLangStmt:
		w.ddl()
		w.flag(FlagProcedural, "CREATE LANGUAGE adds a procedural language")
		return "create", "language"
	case *pg.CreateStmt:
		w.ddl()
		w.write(x.Relation)
		w.fields(m, "relation")
		return "create", "table"
	case *pg.CreateForeignTableStmt:
		w.ddl()
		w.flag(FlagServerIO, "a foreign table reads and writes another server")
		if x.BaseStmt != nil {
			w.write(x.BaseStmt.Relation)
			w.fields(x.BaseStmt.ProtoReflect(), "relation")
		}
		return "create", "foreign table"
	case *pg.CreateTableAsStmt:
		w.ddl()
		if x.Into != nil {
			w.write(x.Into.Rel)
			w.flag(FlagWrite, "")
			w.fields(x.Into.ProtoReflect(), "rel")
		}
		w.fields(m, "into")
		if x.IsSelectInto {
			return "select", "into"
		}
		return "create", objectName(x.Objtype)
	case *pg.ViewStmt:
		w.ddl()
		w.write(x.View)
		w.fields(m, "view")
		return "create", "view"
	case *pg.IndexStmt:
		w.ddl()
		w.write(x.Relation)
		w.fields(m, "relation")
		return "create", "index"
	case *pg.CreateSchemaStmt:
		w.ddl()
		w.fields(m)
		return "create", "schema"
	case *pg.CreateSeqStmt:
		w.ddl()
		w.write(x.Sequence)
		w.fields(m, "sequence")
		return "create", "sequence"
	case *pg.AlterSeqStmt:
		w.ddl()
		w.write(x.Sequence)
		w.fields(m, "sequence")
		return "alter", "sequence"
	case *pg.CreateTrigStmt:
		w.ddl()
		w.write(x.Relation)
		w.fields(m, "relation")
		return "create", "trigger"
	case *pg.CreateEventTrigStmt:
		w.ddl()
		w.fields(m)
		return "create", "event trigger"
	case *pg.RuleStmt:
		w.ddl()
		w.write(x.Relation)
		w.fields(m, "relation")
		return "create", "rule"
	case *pg.CreateExtensionStmt:
		w.ddl()
		if riskyExtensions[strings.ToLower(x.Extname)] {
			w.flag(FlagServerIO, fmt.Sprintf("extension %s reaches outside the database or runs untrusted code", x.Extname))
		}
		w.fields(m)
		return "create", "extension"
	case *pg.AlterExtensionStmt, *pg.AlterExtensionContentsStmt:
		w.ddl()
		w.fields(m)
		return "alter", "extension"
	case *pg.CreateFdwStmt:
		w.ddl()
		w.flag(FlagServerIO, "a foreign data wrapper reaches other servers")
		return "create", "foreign data wrapper"
	case *pg.AlterFdwStmt:
		w.ddl()
		w.flag(FlagServerIO, "a foreign data wrapper reaches other servers")
		return "alter", "foreign data wrapper"
	case *pg.CreateForeignServerStmt:
		w.ddl()
		w.flag(FlagServerIO, "a foreign server connects the database to another server")
		return "create", "server"
	case *pg.AlterForeignServerStmt:
		w.ddl()
		w.flag(FlagServerIO, "a foreign server connects the database to another server")
		return "alter", "server"
	case *pg.CreateUserMappingStmt:
		w.ddl()
		w.flag(FlagServerIO, "a user mapping stores credentials for another server")
		return "create", "user mapping"
	case *pg.AlterUserMappingStmt:
		w.ddl()
		w.flag(FlagServerIO, "a user mapping stores credentials for another server")
		return "alter", "user mapping"
	case *pg.DropUserMappingStmt:
		w.ddl()
		w.flag(FlagServerIO, "a user mapping stores credentials for another server")
		return "drop", "user mapping"
	case *pg.ImportForeignSchemaStmt:
		w.ddl()
		w.flag(FlagServerIO, "IMPORT FOREIGN SCHEMA creates tables that read another server")
		return "create", "foreign table"
	case *pg.CreateSubscriptionStmt:
		w.ddl()
		w.flag(FlagServerIO, "a subscription connects the database to another server")
		return "create", "subscription"
	case *pg.AlterSubscriptionStmt:
		w.ddl()
		w.flag(FlagServerIO, "a subscription connects the database to another server")
		return "alter", "subscription"
	case *pg.DropSubscriptionStmt:
		w.ddl()
		w.flag(FlagServerIO, "a subscription connects the database to another server")
		return "drop", "subscription"
	case *pg.CreatePublicationStmt:
		w.ddl()
		w.fields(m)
		return "create", "publication"
	case *pg.AlterPublicationStmt:
		w.ddl()
		w.fields(m)
		return "alter", "publication"
	case *pg.CreateTableSpaceStmt:
		w.ddl()
		w.flag(FlagServerIO, "a tablespace is a directory on the database server")
		return "create", "tablespace"
	case *pg.DropTableSpaceStmt:
		w.ddl()
		w.flag(FlagServerIO, "a tablespace is a directory on the database server")
		return "drop", "tablespace"
	case *pg.AlterTableSpaceOptionsStmt, *pg.AlterTableMoveAllStmt:
		w.ddl()
		w.flag(FlagServerIO, "a tablespace is a directory on the database server")
		return "alter", "tablespace"
	case *pg.CreatedbStmt:
		w.ddl()
		return "create", "database"
	case *pg.AlterDatabaseStmt, *pg.AlterDatabaseSetStmt, *pg.AlterDatabaseRefreshCollStmt:
		w.ddl()
		return "alter", "database"
	case *pg.DropdbStmt:
		w.ddl()
		w.flag(FlagDropDB, fmt.Sprintf("DROP DATABASE %s destroys a whole database", x.Dbname))
		return "drop", "database"
	case *pg.CreateRoleStmt:
		obj := "create " + strings.ToLower(strings.TrimPrefix(x.StmtType.String(), "ROLESTMT_"))
		w.flag(FlagPrivilege, fmt.Sprintf("%s %s changes who can do what", strings.ToUpper(obj), x.Role))
		return "role", obj
	case *pg.AlterRoleStmt, *pg.AlterRoleSetStmt:
		w.flag(FlagPrivilege, "ALTER ROLE changes who can do what")
		return "role", "alter role"
	case *pg.DropRoleStmt:
		w.flag(FlagPrivilege, "DROP ROLE changes who can do what")
		return "role", "drop role"
	case *pg.GrantStmt:
		kind := Kind("grant")
		if !x.IsGrant {
			kind = "revoke"
		}
		var names []string
		for _, o := range x.Objects {
			if rv := o.GetRangeVar(); rv != nil {
				w.write(rv)
				names = append(names, rangeVarName(rv))
			}
		}
		w.fields(m, "objects")
		on := "a " + objectName(x.Objtype)
		if len(names) > 0 {
			on = strings.Join(names, ", ")
		}
		w.flag(FlagPrivilege, fmt.Sprintf("%s changes privileges on %s", strings.ToUpper(string(kind)), on))
		return kind, objectName(x.Objtype)
	case *pg.GrantRoleStmt:
		kind := Kind("grant")
		if !x.IsGrant {
			kind = "revoke"
		}
		w.flag(FlagPrivilege, fmt.Sprintf("%s changes role membership", strings.ToUpper(string(kind))))
		return kind, "role"
	case *pg.AlterDefaultPrivilegesStmt:
		w.ddl()
		w.flag(FlagPrivilege, "ALTER DEFAULT PRIVILEGES changes privileges of future objects")
		return "alter", "default privileges"
	case *pg.AlterOwnerStmt:
		w.ddl()
		w.write(x.Relation)
		w.flag(FlagPrivilege, fmt.Sprintf("changes the owner of a %s", objectName(x.ObjectType)))
		return "alter", objectName(x.ObjectType)
	case *pg.ReassignOwnedStmt:
		w.ddl()
		w.flag(FlagPrivilege, "REASSIGN OWNED changes the owner of objects")
		return "alter", "owned"
	case *pg.DropOwnedStmt:
		w.ddl()
		w.flag(FlagPrivilege, "DROP OWNED drops objects and privileges of roles")
		return "drop", "owned"
	case *pg.CreatePolicyStmt:
		w.ddl()
		w.write(x.Table)
		w.flag(FlagPrivilege, "a row-level security policy decides who sees which rows")
		w.fields(m, "table")
		return "create", "policy"
	case *pg.AlterPolicyStmt:
		w.ddl()
		w.write(x.Table)
		w.flag(FlagPrivilege, "a row-level security policy decides who sees which rows")
		w.fields(m, "table")
		return "alter", "policy"
	case *pg.SecLabelStmt:
		w.ddl()
		w.flag(FlagPrivilege, "SECURITY LABEL changes access control")
		return "security_label", objectName(x.Objtype)
	case *pg.AlterTableStmt:
		w.ddl()
		w.write(x.Relation)
		for _, c := range x.Cmds {
			cmd := c.GetAlterTableCmd()
			if cmd == nil {
				continue
			}
			switch cmd.Subtype {
			case pg.AlterTableType_AT_ChangeOwner:
				w.flag(FlagPrivilege, "changes the owner of "+rangeVarName(x.Relation))
			case pg.AlterTableType_AT_DisableRowSecurity, pg.AlterTableType_AT_NoForceRowSecurity:
				w.flag(FlagPrivilege, "turns row-level security off on "+rangeVarName(x.Relation))
			}
		}
		w.fields(m, "relation")
		return "alter", objectName(x.Objtype)
	case *pg.RenameStmt:
		w.ddl()
		if tableLike(x.RenameType) || x.RenameType == pg.ObjectType_OBJECT_COLUMN {
			w.write(x.Relation)
		}
		if x.RenameType == pg.ObjectType_OBJECT_ROLE {
			w.flag(FlagPrivilege, "renames a role")
			return "role", "alter role"
		}
		if serverObject(x.RenameType) {
			w.flag(FlagServerIO, fmt.Sprintf("a %s reaches outside the database", objectName(x.RenameType)))
		}
		return "alter", objectName(x.RenameType)
	case *pg.AlterObjectSchemaStmt:
		w.ddl()
		w.write(x.Relation)
		return "alter", objectName(x.ObjectType)
	case *pg.DropStmt:
		w.ddl()
		if tableLike(x.RemoveType) {
			for _, o := range x.Objects {
				if l := o.GetList(); l != nil {
					w.writes = addName(w.writes, listName(l.Items))
				}
			}
		}
		switch {
		case serverObject(x.RemoveType):
			w.flag(FlagServerIO, fmt.Sprintf("a %s reaches outside the database", objectName(x.RemoveType)))
		case x.RemoveType == pg.ObjectType_OBJECT_POLICY:
			w.flag(FlagPrivilege, "a row-level security policy decides who sees which rows")
		}
		return "drop", objectName(x.RemoveType)
	case *pg.CommentStmt:
		w.ddl()
		return "comment", objectName(x.Objtype)
	case *pg.ReplicaIdentityStmt:
		w.fields(m)
		return "alter", ""
	case *pg.AlterFunctionStmt:
		w.ddl()
		w.fields(m)
		return "alter", objectName(x.Objtype)
	case *pg.AlterDomainStmt:
		w.ddl()
		w.fields(m)
		return "alter", "domain"
	case *pg.AlterEnumStmt, *pg.AlterTypeStmt, *pg.AlterCollationStmt, *pg.AlterOperatorStmt,
		*pg.AlterOpFamilyStmt, *pg.AlterTSDictionaryStmt, *pg.AlterTSConfigurationStmt, *pg.AlterStatsStmt,
		*pg.AlterEventTrigStmt, *pg.AlterObjectDependsStmt:
		w.ddl()
		w.fields(m)
		return "alter", alterObject(x)
	case *pg.DefineStmt:
		w.ddl()
		w.fields(m)
		return "create", objectName(x.Kind)
	case *pg.CompositeTypeStmt, *pg.CreateEnumStmt, *pg.CreateRangeStmt:
		w.ddl()
		w.fields(m)
		return "create", "type"
	case *pg.CreateDomainStmt:
		w.ddl()
		w.fields(m)
		return "create", "domain"
	case *pg.CreateOpClassStmt:
		w.ddl()
		return "create", "operator class"
	case *pg.CreateOpFamilyStmt:
		w.ddl()
		return "create", "operator family"
	case *pg.CreateConversionStmt:
		w.ddl()
		return "create", "conversion"
	case *pg.CreateCastStmt:
		w.ddl()
		return "create", "cast"
	case *pg.CreateTransformStmt:
		w.ddl()
		return "create", "transform"
	case *pg.CreateAmStmt:
		w.ddl()
		return "create", "access method"
	case *pg.CreateStatsStmt:
		w.ddl()
		w.fields(m)
		return "create", "statistics"
	case *pg.LockStmt:
		w.fields(m)
		return "lock", ""
	case *pg.VacuumStmt:
		w.fields(m)
		if x.IsVacuumcmd {
			return "vacuum", ""
		}
		return "analyze", ""
	case *pg.ClusterStmt:
		w.fields(m)
		return "cluster", ""
	case *pg.ReindexStmt:
		w.fields(m)
		return "reindex", strings.ToLower(strings.TrimPrefix(x.Kind.String(), "REINDEX_OBJECT_"))
	case *pg.RefreshMatViewStmt:
		w.write(x.Relation)
		w.flag(FlagWrite, "")
		return "refresh", "materialized view"
	case *pg.ListenStmt:
		return "listen", ""
	case *pg.UnlistenStmt:
		return "unlisten", ""
	case *pg.NotifyStmt:
		return "notify", ""
	case *pg.DiscardStmt:
		return "discard", strings.ToLower(strings.TrimPrefix(x.Target.String(), "DISCARD_"))
	case *pg.CheckPointStmt:
		return "checkpoint", ""
	case *pg.LoadStmt:
		w.flag(FlagServerIO, "LOAD loads a shared library from the database server's file system")
		return "load", ""
	case *pg.ReturnStmt:
		// Only inside a function body (BEGIN ATOMIC ... END).
		w.fields(m)
		return "other", "return"
	}
	w.unknownf("guardrun does not know the statement type %s", m.Descriptor().Name())
	return Unknown, ""
}

func alterObject(x any) string {
	switch x.(type) {
	case *pg.AlterEnumStmt, *pg.AlterTypeStmt:
		return "type"
	case *pg.AlterCollationStmt:
		return "collation"
	case *pg.AlterOperatorStmt:
		return "operator"
	case *pg.AlterOpFamilyStmt:
		return "operator family"
	case *pg.AlterTSDictionaryStmt:
		return "text search dictionary"
	case *pg.AlterTSConfigurationStmt:
		return "text search configuration"
	case *pg.AlterStatsStmt:
		return "statistics"
	case *pg.AlterEventTrigStmt:
		return "event trigger"
	}
	return "object"
}

// explain handles EXPLAIN. With ANALYZE the statement runs, so it is
// classified as that statement; without, it is "explain" with the inner's
// reads and functions (planning can run immutable functions).
func (w *walker) explain(x *pg.ExplainStmt) (Kind, string) {
	analyze := false
	for _, o := range x.Options {
		d := o.GetDefElem()
		if d == nil || d.Defname != "analyze" {
			continue
		}
		if d.Arg == nil {
			analyze = true
			continue
		}
		w.sensitive = true // EXPLAIN (ANALYZE off) and (ANALYZE on) differ by a literal
		analyze = explainBool(d.Arg)
	}
	inner, sens := classifyNode(x.Query)
	w.inner, w.sensitive = &inner, w.sensitive || sens
	if analyze {
		w.absorb(inner, true)
		w.name = inner.Name
		return inner.Kind, inner.Object
	}
	w.absorb(inner, false)
	return "explain", ""
}

// explainBool reads an option value as PostgreSQL's defGetBoolean does. A
// value it cannot read counts as true: the statement may run.
func explainBool(n *pg.Node) bool {
	var s string
	switch v := n.GetNode().(type) {
	case *pg.Node_Integer:
		return v.Integer.Ival != 0
	case *pg.Node_String_:
		s = v.String_.Sval
	case *pg.Node_AConst:
		switch c := v.AConst.Val.(type) {
		case *pg.A_Const_Ival:
			return c.Ival.Ival != 0
		case *pg.A_Const_Sval:
			s = c.Sval.Sval
		case *pg.A_Const_Boolval:
			return c.Boolval.Boolval
		default:
			return true
		}
	case *pg.Node_Boolean:
		return v.Boolean.Boolval
	default:
		return true
	}
	switch strings.ToLower(s) {
	case "false", "off", "0", "f", "fa", "fal", "fals", "n", "no", "of":
		return false
	}
	return true
}

// absorb merges an inner statement (PREPARE's, EXPLAIN's) into w. With all
// it takes everything; without, only what merely planning it touches.
func (w *walker) absorb(in Statement, all bool) {
	for _, r := range in.Reads {
		w.reads = addName(w.reads, r)
	}
	if !all {
		// Planning a write still looks at its tables.
		for _, r := range in.Writes {
			w.reads = addName(w.reads, r)
		}
	}
	for _, f := range in.Functions {
		w.funcs = addName(w.funcs, f)
	}
	for _, n := range in.notes {
		if all || n.fromFunc || n.flag == FlagUnknown {
			w.note(n.flag, n.text, n.fromFunc)
		}
	}
	if in.Kind == Unknown {
		w.unknown = append(w.unknown, "the inner statement could not be classified")
		w.flag(FlagUnknown, "")
	}
	if !all {
		return
	}
	for _, wr := range in.Writes {
		w.writes = addName(w.writes, wr)
	}
	for _, f := range in.Flags {
		w.flag(f, "")
	}
	for _, k := range in.Kinds {
		if k == "insert" || k == "update" || k == "delete" || k == "merge" || k == "truncate" || k == "copy" || k == "create" {
			w.dml = append(w.dml, k)
		}
	}
}
