package authzclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gatehouse/gatehouse/pkg/authzclient"
)

// fakeGatehouse answers POST /v1/authz/check as Gatehouse does: alice may
// read invoices, nobody may do anything else.
func fakeGatehouse() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/authz/check" {
			http.NotFound(w, r)
			return
		}
		var chk authzclient.Check
		if err := json.NewDecoder(r.Body).Decode(&chk); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		res := authzclient.Result{Reason: "no_matching_grant", Matched: []authzclient.Match{}}
		if chk.Subject == "alice" && chk.Permission == "invoices:read" {
			res = authzclient.Result{Allowed: true, Reason: "allowed",
				Matched: []authzclient.Match{{GrantID: "g1", Role: "reader", Via: []string{"accountant", "reader"}}}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}))
}

func ExampleClient_Check() {
	gatehouse := fakeGatehouse()
	defer gatehouse.Close()

	// In production HTTPClient carries a client token with authz:check.
	c := authzclient.New(authzclient.Config{BaseURL: gatehouse.URL, HTTPClient: gatehouse.Client()})
	res, err := c.Check(context.Background(), authzclient.Check{
		Subject:    "alice",
		Permission: "invoices:read",
		Resource:   &authzclient.Resource{Type: "invoice", ID: "inv-42"},
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(res.Allowed, res.Reason, res.Matched[0].Role, res.Matched[0].Via)
	// Output: true allowed reader [accountant reader]
}

func ExampleClient_Require() {
	gatehouse := fakeGatehouse()
	defer gatehouse.Close()
	c := authzclient.New(authzclient.Config{BaseURL: gatehouse.URL, HTTPClient: gatehouse.Client()})

	// The subject comes from the request; with accesstoken.Middleware in
	// front, use authzclient.AccessTokenSubject instead.
	fromHeader := func(r *http.Request) (string, authzclient.Resource, authzclient.Context, error) {
		return r.Header.Get("X-User"), authzclient.Resource{Type: "invoice", ID: r.PathValue("id")}, authzclient.Context{}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /invoices/{id}", c.Require("invoices:read", fromHeader)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "invoice", r.PathValue("id")) })))

	for _, user := range []string{"alice", "bob"} {
		req := httptest.NewRequest(http.MethodGet, "/invoices/inv-42", nil)
		req.Header.Set("X-User", user)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(user, rec.Code)
	}
	// Output:
	// alice 200
	// bob 403
}
