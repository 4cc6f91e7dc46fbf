package app

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse/gatehouse/internal/apis"
	"github.com/gatehouse/gatehouse/internal/httpapi"
)

const apisUsage = `Usage:
  gatehouse apis create --identifier URI --name NAME [--scopes read:invoices,write:invoices]
  gatehouse apis update API_ID [--name NAME] [--scopes a,b]
  gatehouse apis list
  gatehouse apis delete API_ID

An API is a resource server that access tokens are issued for (RFC 8707):
a client asks for resource=URI (POST /v1/auth/login, or the token endpoint's
refresh_token and client_credentials grants) and the token's aud is that
identifier, so only that API accepts it. The identifier is an absolute URI
without a fragment, such as https://api.example.com; it cannot change. The
scopes are those the API defines, which tokens for it may carry.
`

func (c *cli) apis(ctx context.Context, args []string) int {
	if code, done := c.subcommandUsage(args, apisUsage); done {
		return code
	}
	var identifier, name, scopes string
	var flags *flag.FlagSet
	pos, ok := c.flags("apis "+args[0], args[1:], func(fs *flag.FlagSet) {
		flags = fs
		if args[0] == "create" {
			fs.StringVar(&identifier, "identifier", "", "the API's identifier, an absolute URI such as https://api.example.com (required)")
		}
		if args[0] == "create" || args[0] == "update" {
			fs.StringVar(&name, "name", "", "a name for people")
			fs.StringVar(&scopes, "scopes", "", "comma-separated scopes the API defines, e.g. read:invoices,write:invoices")
		}
	})
	if !ok {
		return exitUsage
	}
	switch {
	case args[0] == "create" && (identifier == "" || name == "" || len(pos) != 0),
		(args[0] == "delete" || args[0] == "update") && len(pos) != 1,
		args[0] == "list" && len(pos) != 0,
		args[0] != "create" && args[0] != "list" && args[0] != "delete" && args[0] != "update":
		fmt.Fprint(c.env.Stderr, apisUsage)
		return exitUsage
	}
	// update changes only what was given (an empty --scopes clears them).
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	scopeList := strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' })
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	db, _, closeAll, err := c.openForCLI(ctx, cfg, log)
	if err != nil {
		return c.failed(log, "cannot open storage", err)
	}
	defer closeAll()
	reg, err := apis.New(apis.Deps{Store: apiStore(db.store), Issuer: cfg.Server.Issuer, DefaultAudience: cfg.Tokens.DefaultAudience, Log: log})
	if err != nil {
		return c.failed(log, "cannot build the API registry", err)
	}
	switch args[0] {
	case "create":
		a, err := reg.Create(ctx, apis.Input{Identifier: identifier, Name: name, Scopes: scopeList}, httpapi.Meta{})
		if err != nil {
			return c.printFailure("apis create", err)
		}
		return c.printAPI(a.ID, apis.ViewOf(a))
	case "update":
		var np *string
		var sp *[]string
		if set["name"] {
			np = &name
		}
		if set["scopes"] {
			sp = &scopeList
		}
		a, err := reg.Update(ctx, pos[0], np, sp, httpapi.Meta{})
		if err != nil {
			return c.printFailure("apis update", err)
		}
		return c.printAPI(a.ID, apis.ViewOf(a))
	case "delete":
		if err := reg.Delete(ctx, pos[0], httpapi.Meta{}); err != nil {
			return c.printFailure("apis delete", err)
		}
		fmt.Fprintf(c.env.Stdout, "deleted API %s\n", pos[0])
		return exitOK
	}
	list, err := reg.List(ctx)
	if err != nil {
		return c.printFailure("apis list", err)
	}
	out := make([]apis.View, 0, len(list))
	for _, a := range list {
		out = append(out, apis.ViewOf(a))
	}
	if c.output == "json" {
		return c.printJSON(map[string]any{"apis": out})
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tIDENTIFIER\tNAME\tSCOPES\tCREATED")
	for _, a := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Identifier, a.Name, strings.Join(a.Scopes, ","), a.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
	return exitOK
}

// printAPI prints a created or updated API.
func (c *cli) printAPI(id string, v apis.View) int {
	if c.output == "json" {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.env.Stdout, "id:         %s\nidentifier: %s\nname:       %s\nscopes:     %s\n", id, v.Identifier, v.Name, strings.Join(v.Scopes, ","))
	return exitOK
}
