package api

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/gatehouse/gatehouse/api/apitest"
)

func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	apitest.StrictFormats()
	b, err := JSON("")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// mediaExamples returns the examples of a media type by name ("" for the
// single `example`).
func mediaExamples(mt *openapi3.MediaType) map[string]any {
	out := map[string]any{}
	if mt.Example != nil {
		out[""] = mt.Example
	}
	for name, ex := range mt.Examples {
		if ex != nil && ex.Value != nil {
			out[name] = ex.Value.Value
		}
	}
	return out
}

// TestEveryBodyHasAValidExample holds the document to giving integrators an
// example of every request body and of every JSON response body, and to
// those examples being right: each one must validate against its schema.
func TestEveryBodyHasAValidExample(t *testing.T) {
	doc := loadDocument(t)

	// The library's own pass over the examples (media types, and the
	// components they reference).
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("document with examples is invalid: %v", err)
	}

	check := func(where string, mt *openapi3.MediaType, req bool) {
		t.Helper()
		exs := mediaExamples(mt)
		if len(exs) == 0 {
			t.Errorf("%s: no example", where)
			return
		}
		if mt.Schema == nil || mt.Schema.Value == nil {
			t.Errorf("%s: no schema", where)
			return
		}
		opts := []openapi3.SchemaValidationOption{openapi3.MultiErrors()}
		if req {
			opts = append(opts, openapi3.VisitAsRequest())
		} else {
			opts = append(opts, openapi3.VisitAsResponse())
		}
		names := make([]string, 0, len(exs))
		for n := range exs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := mt.Schema.Value.VisitJSON(exs[n], opts...); err != nil {
				t.Errorf("%s: example %q does not match the schema: %v", where, n, err)
			}
		}
	}

	ops := 0
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			ops++
			name := method + " " + path
			if rb := op.RequestBody; rb != nil && rb.Value != nil {
				if len(rb.Value.Content) == 0 {
					t.Errorf("%s: request body without content", name)
				}
				for ct, mt := range rb.Value.Content {
					check(name+" request "+ct, mt, true)
				}
			}
			for status, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for ct, mt := range resp.Value.Content {
					if !strings.Contains(ct, "json") {
						continue // HTML pages are not examples' business
					}
					check(name+" "+status+" "+ct, mt, false)
				}
			}
		}
	}
	if ops < 50 {
		t.Fatalf("walked %d operations; the document has more", ops)
	}
}
