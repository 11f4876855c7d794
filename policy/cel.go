package policy

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"
)

// celEnv compiles rule conditions. One per Parse: no package-level state.
type celEnv struct{ env *cel.Env }

func newCELEnv() (*celEnv, error) {
	list := cel.ListType(cel.StringType)
	env, err := cel.NewEnv(
		cel.Variable("connection", cel.StringType),
		cel.Variable("conn_type", cel.StringType),
		cel.Variable("user", cel.StringType),
		cel.Variable("verified", cel.BoolType),
		cel.Variable("groups", list),
		cel.Variable("kind", cel.StringType),
		cel.Variable("kinds", list),
		cel.Variable("object", cel.StringType),
		cel.Variable("tables", list),
		cel.Variable("reads", list),
		cel.Variable("writes", list),
		cel.Variable("functions", list),
		cel.Variable("flags", list),
		cel.Variable("sql", cel.StringType),
	)
	if err != nil {
		return nil, err
	}
	return &celEnv{env: env}, nil
}

// celCostLimit bounds one evaluation, so a condition cannot stall a
// connection on a huge statement.
const celCostLimit = 1_000_000

func (e *celEnv) compile(expr string) (cel.Program, error) {
	ast, iss := e.env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("CEL does not compile: %s", oneLine(iss.Err().Error()))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("CEL condition must be true or false, this one gives %s", ast.OutputType())
	}
	prg, err := e.env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(celCostLimit))
	if err != nil {
		return nil, fmt.Errorf("CEL: %s", oneLine(err.Error()))
	}
	return prg, nil
}

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
