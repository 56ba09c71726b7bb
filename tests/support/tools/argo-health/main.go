// argo-health evaluates an Argo CD custom health check (health.lua) against Kubernetes objects
// the way Argo CD does (util/lua/lua.go, v3.6): gopher-lua (Lua 5.1) with the standard libraries
// skipped except package, base and table (Argo CD also loads a "safe" os library, which Cairn's
// checks do not use and this runner leaves out, so a check that needs it fails here), the object
// converted to a Lua table as Argo converts it, a one-second deadline, the returned table encoded
// with layeh.com/gopher-json, and a status outside Argo's six codes turned into Unknown.
//
// usage: argo-health HEALTH.lua OBJECT.json...   (- reads one object from stdin)
// prints one line per object: {"status":"Healthy","message":"..."}
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

var validStatus = map[string]bool{"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true}

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: argo-health HEALTH.lua OBJECT.json..."))
	}
	script, err := os.ReadFile(os.Args[1])
	check(err)
	for _, f := range os.Args[2:] {
		var data []byte
		if f == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		check(err)
		hs, err := evaluate(string(script), data)
		check(err)
		out, _ := json.Marshal(hs)
		fmt.Println(string(out))
	}
}

func evaluate(script string, object []byte) (*healthStatus, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(object))
	dec.UseNumber() // the API server's integers reach Argo CD as int64, its other numbers as float64
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		n string
		f lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.f), NRet: 0, Protect: true}, lua.LString(lib.n)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type().String())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	hs := &healthStatus{}
	if err := json.Unmarshal(encoded, hs); err != nil {
		return nil, err
	}
	if !validStatus[hs.Status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

// decodeValue converts like Argo CD's decodeValue: numbers to Lua numbers, lists to array tables,
// maps to hash tables, null to nil.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return lua.LNumber(i)
		}
		f, _ := v.Float64()
		return lua.LNumber(f)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argo-health:", err)
	os.Exit(1)
}
