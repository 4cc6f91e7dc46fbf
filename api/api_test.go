package api

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	b, err := JSON("https://auth.example.com")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPIMajorMinor() != "3.1" {
		t.Errorf("openapi = %q, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}
	if got := doc.Servers[0].URL; got != "https://auth.example.com" {
		t.Errorf("servers[0] = %q, want the issuer", got)
	}
}
