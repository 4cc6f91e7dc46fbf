package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/oauth"
	"github.com/gatehouse/gatehouse/internal/ratepolicy"
	"github.com/gatehouse/gatehouse/internal/store"
	"github.com/gatehouse/gatehouse/internal/token"
)

// openForCLI opens the database (migrating where serve would), the
// keyring and the ephemeral state, as a running server has them.
func (c *cli) openForCLI(ctx context.Context, cfg *config.Config, log *slog.Logger) (*database, *state, func(), error) {
	db, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := prepareSchema(ctx, cfg, db, log); err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	st, err := openState(ctx, cfg, log, time.Now)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return db, st, func() { st.Close(); db.Close() }, nil
}

const keysUsage = `Usage:
  gatehouse keys rotate   make a new signing key current; running servers pick it up
                          at once (through Redis) or within GATEHOUSE_KEYS_RELOAD_INTERVAL
  gatehouse keys list     list the signing keys published in the JWKS
`

func (c *cli) keys(ctx context.Context, args []string) int {
	if code, done := c.subcommandUsage(args, keysUsage); done {
		return code
	}
	if args[0] != "rotate" && args[0] != "list" {
		fmt.Fprint(c.env.Stderr, keysUsage)
		return exitUsage
	}
	if _, ok := c.flags("keys "+args[0], args[1:], nil); !ok {
		return exitUsage
	}
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	keyring, err := loadKeyring(cfg, log)
	if err != nil {
		log.Error("encryption keys", "error", err.Error())
		return exitError
	}
	db, st, closeAll, err := c.openForCLI(ctx, cfg, log)
	if err != nil {
		return c.failed(log, "cannot open storage", err)
	}
	defer closeAll()
	m, err := token.NewManager(token.Config{Issuer: cfg.Server.Issuer, Algorithm: cfg.Tokens.SigningAlg, AccessTTL: cfg.Tokens.AccessTTL, ReloadInterval: cfg.Tokens.KeysReloadInterval},
		db.store, keyring, st.kv, log, time.Now)
	if err != nil {
		log.Error("token manager", "error", err.Error())
		return exitError
	}
	if args[0] == "rotate" {
		kid, err := m.Rotate(ctx)
		if err != nil {
			log.Error("rotation failed", "error", err.Error())
			return exitError
		}
		if c.output == "json" {
			return c.printJSON(map[string]string{"kid": kid, "algorithm": cfg.Tokens.SigningAlg})
		}
		fmt.Fprintf(c.env.Stdout, "new current signing key: %s (%s)\n", kid, cfg.Tokens.SigningAlg)
		return exitOK
	}
	keys, err := db.store.ListSigningKeys(ctx, time.Now())
	if err != nil {
		log.Error("list keys", "error", err.Error())
		return exitError
	}
	type row struct {
		KID       string     `json:"kid"`
		Algorithm string     `json:"algorithm"`
		Current   bool       `json:"current"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at,omitempty"`
	}
	var out []row
	for _, k := range keys {
		r := row{KID: k.ID, Algorithm: k.Algorithm, Current: k.RetiredAt.IsZero(), CreatedAt: k.CreatedAt.UTC()}
		if !k.ExpiresAt.IsZero() {
			t := k.ExpiresAt.UTC()
			r.ExpiresAt = &t
		}
		out = append(out, r)
	}
	if c.output == "json" {
		return c.printJSON(map[string]any{"keys": out})
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATUS\tCREATED\tEXPIRES")
	for _, r := range out {
		status, exp := "retired", ""
		if r.Current {
			status = "current"
		}
		if r.ExpiresAt != nil {
			exp = r.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.KID, r.Algorithm, status, r.CreatedAt.Format(time.RFC3339), exp)
	}
	tw.Flush()
	return exitOK
}

const clientsUsage = `Usage:
  gatehouse clients create --name NAME [--scopes introspect,revoke] [--tier NAME] [--rate-limit-exempt]
  gatehouse clients create --name NAME --public
  gatehouse clients list
  gatehouse clients delete CLIENT_ID

create prints the client_id and the client secret once; only a hash of the
secret is stored. Scope introspect allows token introspection; revoke allows
revoking any token (incident tooling).

--tier puts the client in a tier of the rate-limit policy (tiers: in
GATEHOUSE_RATE_LIMITS_FILE): rules counted by client give it that tier's
limit. --rate-limit-exempt exempts its requests from every rate limit.

--public registers a public client (a mobile or single-page app, which
cannot keep a secret): it has no secret and no scopes; users sign in through
it (POST /v1/auth/login with its client_id) and it refreshes their tokens
with its client_id alone. Gatehouse's own first-party public client,
"gatehouse", needs no registration.
`

func (c *cli) clients(ctx context.Context, args []string) int {
	if code, done := c.subcommandUsage(args, clientsUsage); done {
		return code
	}
	var (
		name, scopes, tier string
		public, exempt     bool
	)
	pos, ok := c.flags("clients "+args[0], args[1:], func(fs *flag.FlagSet) {
		if args[0] == "create" {
			fs.StringVar(&name, "name", "", "client name (required)")
			fs.StringVar(&scopes, "scopes", "", "comma-separated scopes, e.g. introspect,revoke")
			fs.BoolVar(&public, "public", false, "a public client (mobile or single-page app): no secret, no scopes")
			fs.StringVar(&tier, "tier", "", "the client's tier of the rate-limit policy (one its tiers: list names)")
			fs.BoolVar(&exempt, "rate-limit-exempt", false, "exempt the client's requests from every rate limit (a trusted internal service)")
		}
	})
	if !ok {
		return exitUsage
	}
	switch {
	case args[0] == "create" && name == "",
		args[0] == "delete" && len(pos) != 1,
		args[0] != "create" && args[0] != "list" && args[0] != "delete":
		fmt.Fprint(c.env.Stderr, clientsUsage)
		return exitUsage
	}
	scopeList, err := oauth.ParseScopes(scopes)
	if err == nil && public && len(scopeList) > 0 {
		err = oauth.ErrPublicScopes
	}
	if err == nil && public && (tier != "" || exempt) {
		err = errors.New("a public client has no rate-limit tier or exemption")
	}
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "gatehouse clients create: %v\n", err)
		return exitUsage
	}
	cfg, log, ok := c.load()
	if !ok {
		return exitConfig
	}
	db, _, closeAll, err := c.openForCLI(ctx, cfg, log)
	if err != nil {
		return c.failed(log, "cannot open storage", err)
	}
	defer closeAll()
	if tier != "" {
		limits, err := ratepolicy.NewWatcher(cfg.RateLimits.File, rateDefaults(cfg), log, 0)
		if err != nil {
			return c.failed(log, "cannot read the rate-limit policy", err)
		}
		if tiers := limits.Policy().Tiers; !slices.Contains(tiers, tier) {
			fmt.Fprintf(c.env.Stderr, "gatehouse clients create: the rate-limit policy declares no tier %q (its tiers: %s)\n", tier, strings.Join(tiers, ", "))
			return exitUsage
		}
	}
	cl := &oauth.Clients{Store: db.store, Now: time.Now}
	switch {
	case args[0] == "create" && public:
		pc, err := cl.CreatePublic(ctx, name, oauth.Actor{})
		if err != nil {
			return c.printFailure("clients create", err)
		}
		if c.output == "json" {
			return c.printJSON(map[string]any{"client_id": pc.ID, "name": pc.Name, "scopes": []string{}, "public": true})
		}
		fmt.Fprintf(c.env.Stdout, "client_id: %s\n\nA public client: it has no secret. Sign users in with this client_id\n(POST /v1/auth/login) and refresh their tokens with it, without a secret.\n", pc.ID)
		return exitOK
	case args[0] == "create":
		nc, err := cl.Create(ctx, name, scopeList, oauth.Actor{}, oauth.WithRateLimits(tier, exempt))
		if err != nil {
			return c.printFailure("clients create", err)
		}
		if c.output == "json" {
			return c.printJSON(map[string]any{"client_id": nc.Client.ID, "client_secret": nc.Secret, "name": nc.Client.Name, "scopes": scopeList,
				"rate_limit_tier": nc.Client.RateLimitTier, "rate_limit_exempt": nc.Client.RateLimitExempt})
		}
		fmt.Fprintf(c.env.Stdout, "client_id:     %s\nclient_secret: %s\n\nThe secret is shown only now; store it safely.\n", nc.Client.ID, nc.Secret)
		return exitOK
	case args[0] == "delete":
		if err := db.store.DeleteClient(ctx, pos[0]); err != nil {
			return c.printFailure("clients delete", err)
		}
		fmt.Fprintf(c.env.Stdout, "deleted client %s\n", pos[0])
		return exitOK
	default:
		list, err := db.store.ListClients(ctx)
		if err != nil {
			return c.printFailure("clients list", err)
		}
		if c.output == "json" {
			out := []map[string]any{}
			for _, x := range list {
				out = append(out, map[string]any{"client_id": x.ID, "name": x.Name, "scopes": x.Scopes, "created_at": x.CreatedAt.UTC(), "public": x.Public,
					"rate_limit_tier": x.RateLimitTier, "rate_limit_exempt": x.RateLimitExempt})
			}
			return c.printJSON(map[string]any{"clients": out})
		}
		tw := tabwriter.NewWriter(c.env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tNAME\tSCOPES\tCREATED\tTYPE")
		for _, x := range list {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", x.ID, x.Name, x.Scopes, x.CreatedAt.UTC().Format(time.RFC3339), clientType(x))
		}
		tw.Flush()
		return exitOK
	}
}

// clientType names a client's type as RFC 6749 §2.1 does.
func clientType(c store.Client) string {
	if c.Public {
		return "public"
	}
	return "confidential"
}
