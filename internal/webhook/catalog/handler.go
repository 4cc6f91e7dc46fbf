package catalog

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gatehouse/gatehouse/internal/httpapi"
)

// TypeView is one type as GET /v1/webhooks/event-types lists it.
type TypeView struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
}

// listing is the body of GET /v1/webhooks/event-types, made once.
var listing = sync.OnceValue(func() []byte {
	views := make([]TypeView, 0, len(Types()))
	for _, t := range Types() {
		views = append(views, TypeView{Type: t.Name, Description: t.Description, Schema: t.Schema})
	}
	b, err := json.Marshal(map[string]any{"event_types": views})
	if err != nil {
		panic("catalog: " + err.Error()) // the schemas are valid JSON (tested)
	}
	return b
})

// Handler answers GET /v1/webhooks/event-types with the catalogue:
// {"event_types": [{"type", "description", "schema"}]}, sorted by type.
// The catalogue is the same for everyone and holds nothing private.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpapi.WriteProblem(w, r, httpapi.NewProblem(http.StatusMethodNotAllowed, "method_not_allowed", "The route does not accept "+r.Method+"."))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(listing())
		}
	})
}
