package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestEverySectionValidates makes sure a section added to Config cannot be
// left out of validation: every struct field of Config is a section, and
// problems() walks them all.
func TestEverySectionValidates(t *testing.T) {
	ct := reflect.TypeFor[Config]()
	st := reflect.TypeFor[section]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if f.Type.Kind() == reflect.Struct && !f.Type.Implements(st) {
			t.Errorf("Config.%s (%s) has no validate(env string) []string method", f.Name, f.Type)
		}
	}
}

// TestValidationFunctionsAreShort keeps validation split by section: no
// function that reports problems (validate, problems, *Problems) is longer
// than 40 lines, and each section's validate lives in a file of its own.
func TestValidationFunctionsAreShort(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	validateIn := map[string]int{}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			n := fn.Name.Name
			if n != "validate" && n != "problems" && !strings.HasSuffix(n, "Problems") {
				continue
			}
			checked++
			if n == "validate" {
				validateIn[name]++
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > 40 {
				t.Errorf("%s: %s is %d lines long, want at most 40", fset.Position(fn.Pos()), n, lines)
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no validation functions")
	}
	for name, n := range validateIn {
		if n > 1 {
			t.Errorf("%s holds %d validate methods, want one section per file", name, n)
		}
	}
}
