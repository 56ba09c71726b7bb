// dockerfile-check parses a Dockerfile with BuildKit's own parser (the frontend `docker build`
// uses), runs the lint rules BuildKit applies while parsing (the parse-time subset of
// `docker build --check`), expands ARG and ENV references with BuildKit's shell lexer as a build
// with default build arguments would, and prints the result as JSON for the tests to judge:
// stages with their base, commands, final USER, ENTRYPOINT, ENV and LABELs, plus every warning.
//
// usage: dockerfile-check Dockerfile
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// vars is the build-time environment of a stage (shell.EnvGetter).
type vars map[string]string

func (v vars) Get(k string) (string, bool) { s, ok := v[k]; return s, ok }
func (v vars) Keys() []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	return keys
}

type command struct {
	Name string            `json:"name"`
	Code string            `json:"code"`
	Line int               `json:"line"`
	From string            `json:"from,omitempty"` // COPY --from
	Args []string          `json:"args,omitempty"` // RUN / ENTRYPOINT / CMD command line
	Exec bool              `json:"exec,omitempty"` // RUN / ENTRYPOINT / CMD in exec (JSON) form
	Vars map[string]string `json:"vars,omitempty"` // ENV / LABEL / ARG pairs
}

type stage struct {
	Name       string            `json:"name"`
	Base       string            `json:"base"`
	Platform   string            `json:"platform,omitempty"`
	Commands   []command         `json:"commands"`
	User       string            `json:"user"`
	Entrypoint []string          `json:"entrypoint"`
	Env        map[string]string `json:"env"`
	Labels     map[string]string `json:"labels"`
}

type warning struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

type report struct {
	MetaArgs map[string]string `json:"metaArgs"`
	Stages   []stage           `json:"stages"`
	Warnings []warning         `json:"warnings"`
}

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: dockerfile-check Dockerfile"))
	}
	f, err := os.Open(os.Args[1])
	check(err)
	defer f.Close()
	res, err := parser.Parse(f)
	check(err)
	r := report{MetaArgs: map[string]string{}, Stages: []stage{}, Warnings: []warning{}}
	for _, w := range res.Warnings {
		r.Warnings = append(r.Warnings, warning{Rule: "parser", Message: w.Short, Line: rangeLine(w.Location)})
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		r.Warnings = append(r.Warnings, warning{Rule: rule, Message: msg, Line: firstLine(loc)})
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	check(err)
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			r.MetaArgs[kv.Key] = value(kv.Value)
		}
	}
	lex := shell.NewLex(res.EscapeToken)
	expand := func(env vars) instructions.SingleWordExpander {
		return func(word string) (string, error) {
			w, _, err := lex.ProcessWord(word, env)
			return w, err
		}
	}
	for _, s := range stages {
		base, err := expand(vars(r.MetaArgs))(s.BaseName)
		check(err)
		env := vars{}
		out := stage{Name: s.Name, Base: base, Platform: s.Platform, Commands: []command{}, Env: map[string]string{}, Labels: map[string]string{}, Entrypoint: []string{}}
		for _, c := range s.Commands {
			cmd := command{Name: c.Name(), Line: firstLine(c.Location())}
			if str, ok := c.(fmt.Stringer); ok {
				cmd.Code = str.String()
			}
			if e, ok := c.(instructions.SupportsSingleWordExpansion); ok {
				check(e.Expand(expand(env)))
			}
			switch v := c.(type) {
			case *instructions.CopyCommand:
				cmd.From = v.From
			case *instructions.RunCommand:
				cmd.Args, cmd.Exec = v.CmdLine, !v.PrependShell
			case *instructions.EntrypointCommand:
				cmd.Args, cmd.Exec = v.CmdLine, !v.PrependShell
				out.Entrypoint = v.CmdLine
			case *instructions.CmdCommand:
				cmd.Args, cmd.Exec = v.CmdLine, !v.PrependShell
			case *instructions.UserCommand:
				out.User = v.User
			case *instructions.EnvCommand:
				cmd.Vars = pairs(v.Env, out.Env)
				for k, val := range cmd.Vars {
					env[k] = val
				}
			case *instructions.LabelCommand:
				cmd.Vars = pairs(v.Labels, out.Labels)
			case *instructions.ArgCommand:
				cmd.Vars = map[string]string{}
				for _, kv := range v.Args {
					val, global := r.MetaArgs[kv.Key]
					if kv.Value != nil {
						val = *kv.Value
					} else if !global {
						val = ""
					}
					cmd.Vars[kv.Key], env[kv.Key] = val, val
				}
			}
			out.Commands = append(out.Commands, cmd)
		}
		r.Stages = append(r.Stages, out)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	check(enc.Encode(r))
}

func pairs(kvs instructions.KeyValuePairs, into map[string]string) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key], into[kv.Key] = kv.Value, kv.Value
	}
	return m
}

func value(v *string) string {
	if v == nil {
		return ""
	}
	return *v
}

func firstLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

func rangeLine(r *parser.Range) int {
	if r == nil {
		return 0
	}
	return r.Start.Line
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dockerfile-check:", err)
	os.Exit(1)
}
