package app

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/gatehouse/gatehouse/api"
	"github.com/gatehouse/gatehouse/api/apitest"
)

// The OpenAPI document is the truth: every response the black-box suites
// receive from an operation it describes is validated against it (status
// code documented, headers, body schema), so a mismatch fails the test
// that provoked it.
var openAPI struct {
	once   sync.Once
	router routers.Router
	server *url.URL
	err    error
}

func openAPIRouter() (routers.Router, *url.URL, error) {
	openAPI.once.Do(func() {
		apitest.StrictFormats()
		// HTML pages (the API docs) are described with their media type;
		// their body is not a schema to check.
		openapi3filter.RegisterBodyDecoder("text/html", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		})
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.YAML())
		if err != nil {
			openAPI.err = err
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			openAPI.err = err
			return
		}
		openAPI.server, openAPI.err = url.Parse(doc.Servers[0].URL)
		if openAPI.err == nil {
			openAPI.router, openAPI.err = gorillamux.NewRouter(doc)
		}
	})
	return openAPI.router, openAPI.server, openAPI.err
}

// checkResponse validates res (whose body was read into body) against the
// operation of req in the OpenAPI document. Requests to paths the document
// does not describe (the admin listener's metrics, the HTML pages, a test
// that probes an unknown path) are not checked here.
func checkResponse(t testing.TB, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	router, server, err := openAPIRouter()
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	// Route on the document's server: the test servers listen on random
	// ports.
	r := req.Clone(context.Background())
	u := *req.URL
	u.Scheme, u.Host = server.Scheme, server.Host
	r.URL, r.Host = &u, server.Host
	route, params, err := router.FindRoute(r)
	if err != nil {
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: res.StatusCode,
		Header: res.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s answered %d, which the OpenAPI document does not describe: %v\nbody: %.500s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
}
