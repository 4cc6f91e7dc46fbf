package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
)

// cli runs gatehouse commands against the server's storage; it inherits
// this process's environment, which must carry the server's GATEHOUSE_*
// settings.
type cli struct{ bin string }

func (c cli) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gatehouse %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// account is a user the load generator signs in as.
type account struct {
	email, password string
}

// createUsers makes n verified users with distinct random passwords.
func (c cli) createUsers(ctx context.Context, runID string, n int) ([]account, error) {
	accts := make([]account, n)
	for i := range accts {
		a := account{
			email:    fmt.Sprintf("bench-%s-%d@example.com", runID, i),
			password: "Bench-" + rand.Text(), // 26 random base32 characters: passes any policy
		}
		if _, err := c.run(ctx, a.password+"\n", "users", "create", "--email", a.email, "--password-stdin", "--verified"); err != nil {
			return nil, err
		}
		accts[i] = a
	}
	return accts, nil
}

// createClient registers an OAuth client allowed to introspect.
func (c cli) createClient(ctx context.Context) (id, secret string, err error) {
	out, err := c.run(ctx, "", "clients", "create", "--name", "bench", "--scopes", "introspect,revoke", "--output", "json")
	if err != nil {
		return "", "", err
	}
	var v struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.ClientID == "" || v.ClientSecret == "" {
		return "", "", fmt.Errorf("gatehouse clients create: unexpected output %q", out)
	}
	return v.ClientID, v.ClientSecret, nil
}

// authzSetup creates an administrator, the permission bench:read and a
// role bench-reader holding it, and returns what grants the role to a
// user (the authz-check scenario).
func authzSetup(ctx context.Context, g cli, a *api) (func(ctx context.Context, userID string) error, error) {
	admin := account{email: "bench-admin-" + strings.ToLower(rand.Text()[:8]) + "@example.com", password: "Bench-" + rand.Text()}
	if _, err := g.run(ctx, admin.password+"\n", "users", "create", "--email", admin.email, "--password-stdin", "--verified", "--admin"); err != nil {
		return nil, err
	}
	t, r := a.login(ctx, admin.email, admin.password)
	if !r.ok() {
		return nil, fmt.Errorf("administrator login: %s", describe(r))
	}
	call := func(path, body string) (map[string]any, error) {
		r := a.do(ctx, http.MethodPost, path, "application/json", body, "Authorization", "Bearer "+t.AccessToken)
		if !r.ok() {
			return nil, fmt.Errorf("POST %s: %s", path, describe(r))
		}
		var out map[string]any
		return out, json.Unmarshal(r.body, &out)
	}
	if _, err := call("/v1/admin/permissions", `{"name":"bench:read","description":"load test"}`); err != nil {
		return nil, err
	}
	role, err := call("/v1/admin/roles", `{"name":"bench-reader","permissions":["bench:read"]}`)
	if err != nil {
		return nil, err
	}
	roleID, _ := role["id"].(string)
	return func(ctx context.Context, userID string) error {
		_, err := call("/v1/admin/users/"+userID+"/roles", `{"role":"`+roleID+`"}`)
		return err
	}, nil
}
