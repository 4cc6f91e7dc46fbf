// Package api holds Gatehouse's OpenAPI 3.1 document, the public contract of
// the HTTP API. It is checked against the registered routes by tests, so the
// two cannot drift apart.
package api

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

//go:embed openapi.yaml
var spec []byte

// YAML returns the document as written.
func YAML() []byte { return spec }

// JSON returns the document as JSON with servers set to the given public
// base URL (the issuer).
func JSON(serverURL string) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("api: parse openapi.yaml: %w", err)
	}
	if serverURL != "" {
		doc["servers"] = []any{map[string]any{"url": serverURL}}
	}
	return json.MarshalIndent(doc, "", "  ")
}
